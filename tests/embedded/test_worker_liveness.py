"""Worker liveness is timed on the executor's clock, at the heartbeat's receipt: the date a
worker writes in its heartbeat (its own clock) is never compared with the executor's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.models.messages import EXECUTOR_INPUT, WorkerDied, WorkerHeartbeat, WorkerJob
from common.queue import base as topics
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.sqlite import sqlite_repositories
from executor import EmbeddedExecutor
from tests.infra.waiting import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[EmbeddedExecutor, SqliteQueue, SqliteDatabase, Clock]]:
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    queue = SqliteQueue(db)
    clock = Clock()
    executor = EmbeddedExecutor(
        db,
        queue,
        sqlite_repositories(db).flows,
        local_worker_ids=lambda: {"behind", "ahead"},
        worker_dead_after=30.0,
        clock=clock,
    )
    executor.start()
    yield executor, queue, db, clock
    executor.stop()


def _beat_and_job(queue: SqliteQueue, worker_id: str, date: datetime) -> None:
    beat = WorkerHeartbeat(
        worker_id=worker_id, hostname="h", threads=1, running=1, date=date, status="UP"
    )
    job = WorkerJob(
        task_run_id=f"run-{worker_id}",
        execution_id=f"exec-{worker_id}",
        attempt=1,
        worker_id=worker_id,
        date=date,
    )
    queue.emit(topics.WORKERS, worker_id, beat.to_json())
    queue.emit(topics.WORKER_JOBS, job.task_run_id, job.to_json())


def test_heartbeats_are_timed_by_the_receiver(
    setup: tuple[EmbeddedExecutor, SqliteQueue, SqliteDatabase, Clock],
) -> None:
    _, queue, db, clock = setup
    reader = queue.subscribe([topics.EXECUTOR], "test-reader")
    died: list[str] = []

    def read_died() -> list[str]:
        for record in reader.poll(100, timeout=0):
            event = EXECUTOR_INPUT.validate_json(record.value or b"")
            if isinstance(event, WorkerDied):
                died.append(event.worker_id)
        return died

    # a worker whose clock is an hour behind and one whose clock is an hour ahead, both alive
    _beat_and_job(queue, "behind", clock.now - timedelta(hours=1))
    _beat_and_job(queue, "ahead", clock.now + timedelta(hours=1))
    wait_until(
        lambda: len(db.query("SELECT task_run_id FROM executor_worker_jobs")) == 2,
        10,
        "both jobs recorded",
        diagnose=lambda: f"handed back: {read_died()}",
    )
    wait_until(
        lambda: len(db.query("SELECT worker_id FROM executor_workers")) == 2,
        10,
        "both heartbeats recorded",
    )
    # the executor's clock has not moved since: neither worker was silent for 30 s
    assert read_died() == []
    # both fall silent for longer than worker_dead_after on the executor's clock
    clock.now += timedelta(seconds=60)
    wait_until(
        lambda: sorted(read_died()) == ["ahead", "behind"],
        10,
        "the jobs of both silent workers to be handed back",
        diagnose=lambda: str(died),
    )
