"""Worker liveness (pure): which running jobs belong to workers that are gone.

Workers heartbeat on ``workers`` and announce each job they take on ``worker-jobs`` (a
tombstone when it ends). A heartbeat is timed by its receiver: :func:`on_heartbeat` records
the receiver's clock at receipt, never the date the worker wrote, because the two machines'
clocks differ. A worker silent for ``dead_after`` on that clock, or one that said it is DEAD,
is gone; its jobs become ``WorkerDied`` inputs, which resubmit them as new attempts.

The state is serialisable: the embedded shell keeps it in two SQLite tables, the Kafka
liveness coordinator in a table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from pydantic import Field

from common.models.base import WireModel
from common.models.messages import LogEntry, WorkerDied, WorkerHeartbeat, WorkerJob, WorkerTask
from common.queue.base import LOGS, WORKER_TASKS, Outgoing

_GROUP_PREFIX = WORKER_TASKS + "."


class WorkerSeen(WireModel):
    # the receiver's clock when the latest heartbeat arrived
    last_seen: datetime
    status: str = "UP"
    group: str | None = None  # workerGroup.key; None is the default group


class Job(WireModel):
    task_run_id: str
    execution_id: str
    attempt: int
    worker_id: str


class Liveness(WireModel):
    workers: dict[str, WorkerSeen] = Field(default_factory=dict)
    jobs: dict[str, Job] = Field(default_factory=dict)


def on_heartbeat(state: Liveness, beat: WorkerHeartbeat, received_at: datetime) -> WorkerSeen:
    seen = WorkerSeen(last_seen=received_at, status=beat.status, group=beat.group)
    state.workers[beat.worker_id] = seen
    return seen


def on_job(state: Liveness, task_run_id: str, job: WorkerJob | None) -> Job | None:
    """A job record (None: its tombstone, the attempt ended)."""
    if job is None:
        state.jobs.pop(task_run_id, None)
        return None
    held = Job(
        task_run_id=job.task_run_id,
        execution_id=job.execution_id,
        attempt=job.attempt,
        worker_id=job.worker_id,
    )
    state.jobs[task_run_id] = held
    return held


def dead_workers(state: Liveness, now: datetime, dead_after: timedelta) -> set[str]:
    return {
        worker_id
        for worker_id, seen in state.workers.items()
        if seen.status == "DEAD" or now - seen.last_seen > dead_after
    }


def live_groups(state: Liveness, now: datetime, dead_after: timedelta) -> set[str | None]:
    """The worker groups (None: the default one) with at least one live worker at ``now``."""
    dead = dead_workers(state, now, dead_after)
    return {seen.group for worker_id, seen in state.workers.items() if worker_id not in dead}


def unserved_task_logs(
    records: Iterable[Outgoing], live: Callable[[str | None], bool], now: datetime
) -> list[Outgoing]:
    """A WARN log line for each worker task sent to a group no live worker serves.

    Such a task waits, CREATED, until a worker of its group starts; the log line says so on the
    execution's page instead of leaving the user to guess.
    """
    out: list[Outgoing] = []
    for logical, _, value in records:
        if value is None or not (logical == WORKER_TASKS or logical.startswith(_GROUP_PREFIX)):
            continue
        group = logical[len(_GROUP_PREFIX) :] or None
        if live(group):
            continue
        task = WorkerTask.model_validate_json(value)
        run = task.task_run
        if group:
            who = f"worker of group '{group}'"
            start = f"lanner server worker --worker-group {group}"
        else:
            who, start = "worker", "lanner server worker"
        entry = LogEntry(
            tenant_id=task.tenant_id,
            namespace=run.namespace,
            flow_id=run.flow_id,
            execution_id=run.execution_id,
            task_id=run.task_id,
            task_run_id=run.id,
            attempt_number=task.attempt,
            timestamp=now,
            level="WARN",
            thread="executor",
            message=f"no {who} is alive: task '{run.task_id}' waits until one starts (`{start}`)",
        )
        out.append((LOGS, run.execution_id, entry.to_json()))
    return out


def lost_jobs(state: Liveness, now: datetime, dead_after: timedelta) -> list[Job]:
    """Jobs held by workers that are gone at ``now``."""
    dead = dead_workers(state, now, dead_after)
    return [job for job in state.jobs.values() if job.worker_id in dead]


def orphan_jobs(state: Liveness, live_workers: set[str]) -> list[Job]:
    """Jobs held by none of ``live_workers``: at start, those of a previous process."""
    return [job for job in state.jobs.values() if job.worker_id not in live_workers]


def worker_died(jobs: Iterable[Job]) -> list[WorkerDied]:
    """The inputs that hand ``jobs`` back to their executions (ids derive from the attempt, so
    handing the same job back twice is applied once)."""
    return [
        WorkerDied(
            id=f"worker-died:{job.task_run_id}:{job.attempt}",
            execution_id=job.execution_id,
            task_run_id=job.task_run_id,
            attempt=job.attempt,
            worker_id=job.worker_id,
        )
        for job in jobs
    ]


def forget(state: Liveness, jobs: Iterable[Job]) -> None:
    """Jobs handed back are no longer watched."""
    for job in jobs:
        state.jobs.pop(job.task_run_id, None)
