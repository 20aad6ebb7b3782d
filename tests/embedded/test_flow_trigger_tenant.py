"""A Flow trigger fires in the tenant of its flows, not only in ``main``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.backends import Backends
from common.executions import new_execution
from common.flow import parse_flow
from common.flow.store import save_flow
from common.models.messages import ExecutorInput, Kill, NewExecution
from common.queue import base as topics
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from common.storage.local import LocalStorage
from executor import EmbeddedExecutor
from tests.infra.waiting import wait_until

UPSTREAM = """\
id: upstream
namespace: lanner.tenants
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
"""
DOWNSTREAM = """\
id: downstream
namespace: lanner.tenants
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
triggers:
  - id: after-upstream
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: upstream-killed
      flows:
        - namespace: lanner.tenants
          flowId: upstream
          states: [KILLED]
"""
TENANT = "acme"


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[tuple[Backends, SqliteDatabase]]:
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    queue = SqliteQueue(db)
    repositories = sqlite_repositories(db)
    backends = Backends(queue, repositories, LocalStorage(tmp_path / "storage"), Settings())
    for source in (UPSTREAM, DOWNSTREAM):
        save_flow(backends, TENANT, parse_flow(source), source)
    executor = EmbeddedExecutor(db, queue, repositories.flows)
    executor.start()
    yield backends, db
    executor.stop()


def _emit(backends: Backends, event: ExecutorInput) -> None:
    backends.queue.emit(topics.EXECUTOR, event.execution_id, event.to_json())


def test_a_flow_trigger_fires_in_a_tenant_other_than_main(
    backends: tuple[Backends, SqliteDatabase],
) -> None:
    queue_backends, db = backends
    execution = new_execution(
        parse_flow(UPSTREAM), {}, {}, execution_id="up1", now=datetime.now(UTC), tenant_id=TENANT
    )
    _emit(queue_backends, NewExecution(id="new:up1", execution_id="up1", execution=execution))

    def states() -> list[tuple[str, str, str]]:
        return db.query("SELECT flow_id, tenant, state FROM executor_states ORDER BY created")

    wait_until(lambda: ("upstream", TENANT, "PAUSED") in states(), 15, "upstream paused")
    _emit(queue_backends, Kill(id="kill:up1", execution_id="up1"))
    wait_until(
        lambda: ("downstream", TENANT, "PAUSED") in states(),
        15,
        "the downstream flow to be triggered in its tenant",
        diagnose=lambda: str(states()),
    )
