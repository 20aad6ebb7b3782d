"""Executions written straight into a server's SQLite repository, before the server starts:
deep lists (deep pagination, first paint with 100,000 executions) without running them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from common.models.execution import Attempt, Execution, StateEntry, StateInfo, TaskRun
from common.models.state import State
from common.queue.sqlite import SqliteDatabase
from common.repository.sqlite import sqlite_repositories
from tests.contracts.repository import make_execution

CHUNK = 5000


def _states(start: datetime, end_state: State, took: timedelta) -> StateInfo:
    return StateInfo(
        current=end_state,
        histories=[
            StateEntry(state=State.CREATED, date=start),
            StateEntry(state=State.RUNNING, date=start + timedelta(milliseconds=50)),
            StateEntry(state=end_state, date=start + took),
        ],
    )


def seeded_execution(i: int, start: datetime, namespace: str, flow_id: str) -> Execution:
    """An ended execution of three task runs, one attempt each, like a small real flow's."""
    state = State.FAILED if i % 7 == 0 else State.SUCCESS
    took = timedelta(seconds=1 + i % 13)
    execution_id = f"seed{i:07d}"
    base = make_execution(
        execution_id, namespace=namespace, flow_id=flow_id, labels={"team": ("data", "ops")[i % 2]}
    )
    runs = []
    for n, task_id in enumerate(("extract", "transform", "load")):
        at = start + timedelta(milliseconds=100 + 300 * n)
        task_state = state if n == 2 else State.SUCCESS
        info = _states(at, task_state, timedelta(milliseconds=250))
        runs.append(
            TaskRun(
                id=f"{execution_id}-{task_id}",
                execution_id=execution_id,
                namespace=namespace,
                flow_id=flow_id,
                task_id=task_id,
                state=info,
                attempts=[Attempt(state=info, worker_id="worker-1")],
                outputs={"rows": i % 1000},
            )
        )
    return base.model_copy(
        update={"state": _states(start, state, took), "task_run_list": runs, "sequence": 4}
    )


def seed_executions(
    data_dir: Path,
    count: int,
    *,
    namespace: str = "ui.deep",
    flow_id: str = "deep",
    newest: datetime | None = None,
) -> list[str]:
    """``count`` executions one second apart, the newest at ``newest`` (default: now), in the
    database ``LocalServer(data_dir)`` uses; returns their ids newest first (the list's order)."""
    newest = newest or datetime.now(UTC).replace(microsecond=0)
    path = data_dir / "data" / "lanner.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(str(path))
    try:
        executions = sqlite_repositories(db).executions
        for first in range(0, count, CHUNK):
            chunk = [
                seeded_execution(i, newest - timedelta(seconds=i), namespace, flow_id)
                for i in range(first, min(first + CHUNK, count))
            ]
            executions.save_many(chunk)  # type: ignore[attr-defined]
    finally:
        db.close()
    return [f"seed{i:07d}" for i in range(count)]
