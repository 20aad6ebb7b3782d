"""The embedded executor survives failures of its own: a batch that fails on I/O is retried,
never skipped, and an input on which the core raises stops its execution at once instead of
blocking the others.

The failure is injected into the shell's call of the core or its store (a defect cannot be
produced on purpose otherwise); everything else is real: SQLite queue, repositories, core, flows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import executor.embedded as embedded
from common.backends import Backends
from common.executions import new_execution
from common.flow import parse_flow
from common.flow.store import save_flow
from common.models.messages import Kill, LogEntry, NewExecution
from common.models.state import State
from common.queue import base as topics
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from common.storage.local import LocalStorage
from executor import EmbeddedExecutor
from tests.infra.waiting import wait_until

FLOW = """\
id: faults
namespace: lanner.faults
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[EmbeddedExecutor, Backends, SqliteDatabase]]:
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    queue = SqliteQueue(db)
    repositories = sqlite_repositories(db)
    backends = Backends(queue, repositories, LocalStorage(tmp_path / "storage"), Settings())
    save_flow(backends, "main", parse_flow(FLOW), FLOW)
    executor = EmbeddedExecutor(db, queue, repositories.flows)
    yield executor, backends, db
    executor.stop()


def _create(backends: Backends, execution_id: str) -> None:
    flow = parse_flow(FLOW)
    execution = new_execution(
        flow, {}, {}, execution_id=execution_id, now=datetime.now(UTC), tenant_id="main"
    )
    event = NewExecution(id=f"new:{execution_id}", execution_id=execution_id, execution=execution)
    backends.queue.emit(topics.EXECUTOR, execution_id, event.to_json())


def _state(db: SqliteDatabase, execution_id: str) -> str | None:
    rows = db.query("SELECT state FROM executor_states WHERE execution_id = ?", (execution_id,))
    return rows[0][0] if rows else None


def test_a_batch_that_fails_on_io_is_retried_not_skipped(
    setup: tuple[EmbeddedExecutor, Backends, SqliteDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    executor, backends, db = setup
    real_store = embedded.EmbeddedExecutor._store
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        # an I/O failure, longer than the isolation threshold: retried, nothing is given up
        if calls["n"] <= embedded._ISOLATE_AFTER + 1:
            raise OSError("transient")
        return real_store(*args, **kwargs)

    monkeypatch.setattr(embedded.EmbeddedExecutor, "_store", flaky)
    _create(backends, "e1")
    executor.start()
    wait_until(lambda: _state(db, "e1") == State.RUNNING.value, 10, "e1 to start")


def test_an_input_that_keeps_failing_stops_only_its_execution(
    setup: tuple[EmbeddedExecutor, Backends, SqliteDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    executor, backends, db = setup
    real_step = embedded.step
    poisoned: set[str] = {"poison"}

    def step(flow: Any, state: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        if event.execution_id in poisoned:
            raise RuntimeError("a defect")
        return real_step(flow, state, event, *args, **kwargs)

    monkeypatch.setattr(embedded, "step", step)
    logs = backends.queue.subscribe([topics.LOGS], "test-logs")
    for execution_id in ("good-before", "poison", "good-after"):
        _create(backends, execution_id)
    executor.start()
    wait_until(
        lambda: (
            _state(db, "good-before") == State.RUNNING.value
            and _state(db, "good-after") == State.RUNNING.value
        ),
        15,
        "the executions around the poisoned input to start",
    )
    # a NewExecution that cannot be applied is stored FAILED
    wait_until(lambda: _state(db, "poison") == State.FAILED.value, 15, "poison FAILED")
    # an input of an existing execution that cannot be applied stops that execution
    poisoned.add("good-after")
    kill = Kill(id="kill-1", execution_id="good-after")
    backends.queue.emit(topics.EXECUTOR, "good-after", kill.to_json())
    wait_until(lambda: _state(db, "good-after") == State.FAILED.value, 15, "good-after FAILED")
    messages = [
        LogEntry.model_validate_json(r.value).message for r in logs.poll(1000, timeout=1) if r.value
    ]
    assert any("could not apply a 'kill' input" in m for m in messages), messages
    assert _state(db, "good-before") == State.RUNNING.value


def test_an_input_on_which_the_core_raises_fails_its_own_execution_at_once(
    setup: tuple[EmbeddedExecutor, Backends, SqliteDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    executor, backends, db = setup
    real_step = embedded.step
    calls = {"poison": 0}

    def step(flow: Any, state: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        if event.execution_id == "poison":
            calls["poison"] += 1
            raise RuntimeError("a defect")
        return real_step(flow, state, event, *args, **kwargs)

    monkeypatch.setattr(embedded, "step", step)
    logs = backends.queue.subscribe([topics.LOGS], "test-logs")
    for execution_id in ("good-before", "poison", "good-after"):
        _create(backends, execution_id)
    executor.start()
    wait_until(
        lambda: (
            _state(db, "good-before") == State.RUNNING.value
            and _state(db, "good-after") == State.RUNNING.value
            and _state(db, "poison") == State.FAILED.value
        ),
        15,
        "the poisoned execution FAILED, the others running",
        diagnose=lambda: str([_state(db, e) for e in ("good-before", "poison", "good-after")]),
    )
    # failed at the first attempt: the batch was neither retried nor split for it
    assert calls["poison"] == 1
    messages = [
        LogEntry.model_validate_json(r.value).message
        for r in logs.poll(1000, timeout=1)
        if r.value and LogEntry.model_validate_json(r.value).execution_id == "poison"
    ]
    assert any("RuntimeError: a defect" in m for m in messages), messages


def test_a_shell_defect_on_one_input_stops_only_its_execution(
    setup: tuple[EmbeddedExecutor, Backends, SqliteDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    executor, backends, db = setup
    real_records = embedded.step_records

    def records(result: Any) -> Any:
        execution = result.state.execution
        if execution.id == "poison" and execution.state.current != State.FAILED:
            raise RuntimeError("a shell defect")
        return real_records(result)

    monkeypatch.setattr(embedded, "step_records", records)
    for execution_id in ("good-before", "poison", "good-after"):
        _create(backends, execution_id)
    executor.start()
    wait_until(
        lambda: (
            _state(db, "good-before") == State.RUNNING.value
            and _state(db, "good-after") == State.RUNNING.value
            and _state(db, "poison") == State.FAILED.value
        ),
        15,
        "the batch isolated: poison FAILED, the others running",
        diagnose=lambda: str([_state(db, e) for e in ("good-before", "poison", "good-after")]),
    )
