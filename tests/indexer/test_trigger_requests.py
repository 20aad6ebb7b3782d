"""The indexer skips users' trigger requests on ``triggers``: only the scheduler's states count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.models.trigger import TriggerState
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.base import Repositories
from common.repository.sqlite import sqlite_repositories
from common.trigger_requests import new_request, send_request
from indexer import Indexer
from tests.indexer.test_indexer import wait_for

NOW = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[SqliteQueue, Repositories]]:
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    queue = SqliteQueue(db)
    yield queue, sqlite_repositories(db)
    queue.close()
    db.close()


def test_requests_and_their_tombstones_are_not_states(
    env: tuple[SqliteQueue, Repositories],
) -> None:
    queue, repositories = env
    state = TriggerState(namespace="company.team", flow_id="hello", trigger_id="daily", date=NOW)
    queue.emit("triggers", state.uid, state.to_json())
    request = new_request("main", "company.team", "hello", "daily", NOW, disabled=True)
    send_request(queue, request)
    queue.emit("triggers", request.key, None)  # the scheduler applied it
    indexer = Indexer(queue, repositories, batch_size=10, poll_timeout=0.05)
    indexer.start()
    try:
        wait_for(lambda: indexer.indexed >= 3)
    finally:
        indexer.stop()
    (stored,) = repositories.triggers.find("main")
    assert stored.uid == state.uid and not stored.disabled
