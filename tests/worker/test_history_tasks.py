"""The history tasks on a worker: ``log.Fetch`` reads the current execution's logs when no
``executionId`` is given (Kestra's ``FetchTest.fetch`` flow ``get-log.yaml``, whose logs are
in the repository beforehand here instead of after a sleep), and a worker without a
repository fails such a task with a message saying so."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common.models.messages import LogEntry
from common.models.state import State
from common.queue.sqlite import SqliteDatabase
from common.repository.sqlite import sqlite_repositories
from worker import Worker, WorkerConfig

from .conftest import Harness

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CURRENT = {"flow": {"namespace": "company.team", "id": "flow"}, "execution": {"id": "e1"}}


def _log(execution_id: str, task_id: str, level: str, i: int) -> LogEntry:
    return LogEntry(
        namespace="company.team",
        flow_id="flow",
        execution_id=execution_id,
        task_id=task_id,
        timestamp=T0 + timedelta(seconds=i),
        level=level,  # type: ignore[arg-type]
        message=f"{task_id} {i}",
    )


def test_fetch_reads_the_current_execution_by_default(harness: Harness, tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "repository.db"))
    repositories = sqlite_repositories(db)
    repositories.logs.save_many(
        [
            _log("e1", "task-1", "INFO", 0),
            _log("e1", "task-2", "DEBUG", 1),
            _log("e1", "task-2", "ERROR", 2),
            _log("e2", "task-1", "INFO", 3),  # another execution
        ]
    )
    worker = Worker(
        harness.queue,
        harness.storage,
        WorkerConfig(poll_timeout=0.1, heartbeat_interval=0.2, threads=2),
        repositories=repositories,
    )
    worker.start()
    harness.workers.append(worker)
    task = {"id": "get-log-task", "type": "io.kestra.plugin.core.log.Fetch"}
    submitted = harness.submit(task, CURRENT, execution_id="e1")
    result = harness.final(submitted)
    assert result.state == State.SUCCESS, result
    assert result.outputs is not None and result.outputs["size"] == 2
    rows = [json.loads(line) for line in harness.storage.get(result.outputs["uri"]).splitlines()]
    assert [(r["taskId"], r["level"]) for r in rows] == [("task-1", "INFO"), ("task-2", "ERROR")]
    one = harness.final(
        harness.submit(
            {**task, "tasksId": ["task-2"], "level": "DEBUG"}, CURRENT, execution_id="e1"
        )
    )
    assert one.outputs is not None and one.outputs["size"] == 2  # DEBUG and ERROR of task-2
    db.close()


def test_a_worker_without_repository_fails_history_tasks(running: Harness) -> None:
    result, logs = running.run(
        {
            "id": "count",
            "type": "io.kestra.plugin.core.execution.Count",
            "namespaces": ["company"],
            "startDate": "2026-01-01T00:00:00Z",
            "expression": "{{ count > 0 }}",
        },
        CURRENT,
    )
    assert result.state == State.FAILED
    assert any("no access to the repository" in entry.message for entry in logs), logs
