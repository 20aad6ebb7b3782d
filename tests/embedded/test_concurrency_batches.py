"""Flow concurrency on the embedded executor when several inputs of one flow share a batch.

The inputs are queued before the executor starts, so they are read in one batch. Pause keeps
an execution active without a worker; a Kill ends it at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.backends import Backends
from common.executions import new_execution
from common.flow import parse_flow
from common.flow.store import save_flow
from common.models.messages import ExecutorInput, Kill, NewExecution
from common.models.state import State
from common.queue import base as topics
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from common.storage.local import LocalStorage
from executor import EmbeddedExecutor
from tests.infra.waiting import wait_until


def _flow(limit: int) -> str:
    return f"""\
id: limited
namespace: lanner.concurrency
concurrency:
  limit: {limit}
  behavior: QUEUE
sla:
  - id: long
    type: MAX_DURATION
    duration: PT1H
    behavior: FAIL
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
"""


class Setup:
    def __init__(self, tmp_path: Path, limit: int) -> None:
        self.db = SqliteDatabase(str(tmp_path / "lanner.db"))
        self.queue = SqliteQueue(self.db)
        self.repositories = sqlite_repositories(self.db)
        backends = Backends(
            self.queue, self.repositories, LocalStorage(tmp_path / "storage"), Settings()
        )
        self.source = _flow(limit)
        save_flow(backends, "main", parse_flow(self.source), self.source)
        self.executor: EmbeddedExecutor | None = None

    def start(self) -> None:
        self.executor = EmbeddedExecutor(self.db, self.queue, self.repositories.flows)
        self.executor.start()

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.stop()
            self.executor = None

    def emit(self, event: ExecutorInput) -> None:
        self.queue.emit(topics.EXECUTOR, event.execution_id, event.to_json())

    def create(self, execution_id: str) -> None:
        execution = new_execution(
            parse_flow(self.source),
            {},
            {},
            execution_id=execution_id,
            now=datetime.now(UTC),
            tenant_id="main",
        )
        self.emit(
            NewExecution(id=f"new:{execution_id}", execution_id=execution_id, execution=execution)
        )

    def kill(self, execution_id: str) -> None:
        self.emit(Kill(id=f"kill:{execution_id}", execution_id=execution_id))

    def states(self) -> dict[str, str]:
        return dict(self.db.query("SELECT execution_id, state FROM executor_states"))

    def wakeups(self, execution_id: str) -> dict[str, str]:
        rows = self.db.query(
            "SELECT body FROM executor_states WHERE execution_id = ?", (execution_id,)
        )
        return dict(json.loads(rows[0][0]).get("wakeups") or {})

    def settle(self, expected: dict[str, str], what: str) -> None:
        wait_until(lambda: self.states() == expected, 15, what, diagnose=lambda: str(self.states()))


@pytest.fixture
def limit1(tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(tmp_path, 1)
    yield setup
    setup.stop()


@pytest.fixture
def limit2(tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(tmp_path, 2)
    yield setup
    setup.stop()


PAUSED, QUEUED, KILLED = State.PAUSED.value, State.QUEUED.value, State.KILLED.value


def test_an_end_and_a_creation_in_one_batch_keep_the_limit(limit1: Setup) -> None:
    limit1.create("e1")
    limit1.create("e2")
    limit1.start()
    limit1.settle({"e1": PAUSED, "e2": QUEUED}, "e1 paused, e2 queued")
    limit1.stop()
    # one batch: e1 ends (its slot goes to e2, the oldest queued) and e3 is created
    limit1.kill("e1")
    limit1.create("e3")
    limit1.start()
    limit1.settle({"e1": KILLED, "e2": PAUSED, "e3": QUEUED}, "e2 to take the slot, e3 queued")
    # the dequeued execution went through admission: its SLA wake-up is set
    assert any(key.startswith("sla:") for key in limit1.wakeups("e2")), limit1.wakeups("e2")


def test_two_ends_in_one_batch_release_two_queued_executions(limit2: Setup) -> None:
    for execution_id in ("e1", "e2", "e3", "e4"):
        limit2.create(execution_id)
    limit2.start()
    limit2.settle({"e1": PAUSED, "e2": PAUSED, "e3": QUEUED, "e4": QUEUED}, "two paused")
    limit2.stop()
    limit2.kill("e1")
    limit2.kill("e2")
    limit2.start()
    limit2.settle(
        {"e1": KILLED, "e2": KILLED, "e3": PAUSED, "e4": PAUSED}, "both queued executions to run"
    )
