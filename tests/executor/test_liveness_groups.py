"""Which worker groups are served, and the warning on a task that waits for its group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.models.execution import TaskRun
from common.models.messages import LogEntry, WorkerHeartbeat, WorkerTask
from common.queue.base import EXECUTOR, LOGS, worker_tasks_topic
from executor import liveness

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
DEAD_AFTER = timedelta(seconds=5)


def beat(worker_id: str, group: str | None, status: str = "UP") -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker_id=worker_id,
        hostname="h",
        group=group,
        threads=1,
        running=0,
        date=NOW,
        status=status,  # type: ignore[arg-type]
    )


def test_a_group_is_live_while_one_of_its_workers_is() -> None:
    state = liveness.Liveness()
    liveness.on_heartbeat(state, beat("plain", None), NOW)
    liveness.on_heartbeat(state, beat("gpu-old", "gpu"), NOW - timedelta(seconds=6))
    liveness.on_heartbeat(state, beat("eu-leaving", "eu", "DEAD"), NOW)
    assert liveness.live_groups(state, NOW, DEAD_AFTER) == {None}
    liveness.on_heartbeat(state, beat("gpu-new", "gpu"), NOW)
    assert liveness.live_groups(state, NOW, DEAD_AFTER) == {None, "gpu"}


def task(task_id: str, group: str | None) -> WorkerTask:
    run = TaskRun(
        id=f"tr-{task_id}", execution_id="ex1", namespace="ns", flow_id="f", task_id=task_id
    )
    return WorkerTask(
        id=f"wt-{task_id}", task_run=run, task={}, variables={}, attempt=1, worker_group=group
    )


def test_only_tasks_of_unserved_groups_get_a_warning() -> None:
    records = [
        (worker_tasks_topic(t.worker_group), t.task_run.id, t.to_json())
        for t in (task("plain", None), task("gpu", "gpu"), task("eu", "eu"))
    ]
    records.append((EXECUTOR, "ex1", b"{}"))
    logs = liveness.unserved_task_logs(records, lambda group: group in {None, "eu"}, NOW)
    assert [(topic, key) for topic, key, _ in logs] == [(LOGS, "ex1")]
    entry = LogEntry.model_validate_json(logs[0][2] or b"")
    assert (entry.level, entry.task_id, entry.task_run_id) == ("WARN", "gpu", "tr-gpu")
    assert entry.timestamp == NOW
    assert "lanner server worker --worker-group gpu" in entry.message
    assert liveness.unserved_task_logs(records, lambda group: True, NOW) == []
