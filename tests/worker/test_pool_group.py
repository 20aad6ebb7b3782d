"""The worker in its consumer group: a full pool keeps polling, paused, so it is never evicted
for not polling (DESIGN, Worker) and never takes tasks it cannot start."""

from __future__ import annotations

import time
from pathlib import Path

from common.models.messages import WorkerTask
from common.models.state import State
from common.queue.base import WORKER_TASKS, TopicPartition
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.storage.local import LocalStorage
from tests.infra.waiting import wait_until

from .conftest import DEADLINE, Harness

LEASE = 1.0


def test_a_full_worker_stays_in_its_group_and_keeps_its_partitions(tmp_path: Path) -> None:
    queue = SqliteQueue(SqliteDatabase(":memory:"), session_timeout=LEASE)
    harness = Harness(queue, LocalStorage(tmp_path / "storage"))
    worker = harness.worker(threads=1)
    try:
        nap = harness.submit(
            {"id": "nap", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT60S"}
        )
        harness.wait_running(nap)  # its only thread is busy: the pool is full

        # another member joins the worker's group: the full worker hands half over, no more
        other = queue.subscribe([WORKER_TASKS], "worker")
        half = queue.partitions(WORKER_TASKS) // 2

        def shared() -> bool:
            other.poll(10, timeout=0.1)
            return len(other.assignment()) == half

        wait_until(shared, DEADLINE, "the two members to share the partitions")
        mine = set(other.assignment())

        # several leases later the full worker is still a member: the other one did not get
        # its partitions (it would at once if the worker had stopped polling)
        start = time.monotonic()

        def leases_passed() -> bool:
            other.poll(10, timeout=0.1)
            assert set(other.assignment()) == mine, "the full worker was evicted"
            return time.monotonic() - start > 4 * LEASE

        wait_until(leases_passed, DEADLINE, "four leases to pass")

        # a task on one of the worker's partitions waits for a free thread, then runs there
        harness.kill(nap.task_run.execution_id)
        assert harness.final(nap).state == State.KILLED
        held = {tp.partition for tp in set(_all(queue)) - mine}
        task = _task_on(harness, held)
        assert harness.final(task).state == State.SUCCESS
        assert harness.final(task).worker_id == worker.id
        other.close()
    finally:
        worker.stop(drain_timeout=0)
        queue.close()


def _all(queue: SqliteQueue) -> list[TopicPartition]:
    return [TopicPartition(WORKER_TASKS, p) for p in range(queue.partitions(WORKER_TASKS))]


def _task_on(harness: Harness, partitions: set[int]) -> WorkerTask:
    """Submits Log tasks until one lands on one of ``partitions``; returns that one."""
    for _ in range(100):
        task = harness.submit(
            {"id": "log", "type": "io.kestra.plugin.core.log.Log", "message": "x"}
        )
        rows = harness.queue.db.query(
            "SELECT partition FROM queue_records WHERE topic = ? AND key = ?",
            (WORKER_TASKS, task.task_run.id),
        )
        if rows[0][0] in partitions:
            return task
    raise AssertionError("no task landed on the worker's partitions")
