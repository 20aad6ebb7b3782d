"""Fixtures of the worker tests: a real SQLite queue, local storage, a worker, readers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.ids import new_id
from common.models.execution import TaskRun
from common.models.messages import (
    EXECUTOR_INPUT,
    KillOrder,
    LogEntry,
    TaskResult,
    WorkerDied,
    WorkerTask,
    WorkerTaskResult,
)
from common.models.state import State
from common.queue.base import EXECUTOR, KILLS, LOGS, Record, worker_tasks_topic
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.storage.local import LocalStorage
from worker import Worker, WorkerConfig

DEADLINE = 30.0


class Reader:
    """Reads topics from the start and waits for a condition on what was read."""

    def __init__(self, queue: SqliteQueue, topics: list[str]) -> None:
        self.sub = queue.subscribe(topics, f"test-{new_id()}")
        self.records: list[Record] = []

    def wait_for(
        self, predicate: Callable[[list[Record]], bool], timeout: float = DEADLINE
    ) -> list[Record]:
        deadline = time.monotonic() + timeout
        while not predicate(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met; read {len(self.records)} records")
            self.records.extend(self.sub.poll(timeout=0.2))
        return self.records


class Harness:
    def __init__(self, queue: SqliteQueue, storage: LocalStorage) -> None:
        self.queue = queue
        self.storage = storage
        self.results = Reader(queue, [EXECUTOR])
        self.logs = Reader(queue, [LOGS])
        self.workers: list[Worker] = []

    def worker(self, **config: Any) -> Worker:
        config.setdefault("poll_timeout", 0.1)
        config.setdefault("heartbeat_interval", 0.2)
        config.setdefault("kill_grace", 2.0)
        config.setdefault("threads", 4)
        worker = Worker(self.queue, self.storage, WorkerConfig(**config))
        worker.start()
        self.workers.append(worker)
        return worker

    def submit(
        self,
        task: dict[str, Any],
        variables: dict[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        attempt: int = 1,
        group: str | None = None,
    ) -> WorkerTask:
        execution_id = execution_id or new_id()
        run = TaskRun(
            id=new_id(),
            execution_id=execution_id,
            namespace="company.team",
            flow_id="flow",
            task_id=task["id"],
        )
        run.set_state(State.CREATED, datetime.now(UTC))
        worker_task = WorkerTask(
            task_run=run, task=task, variables=variables or {}, attempt=attempt
        )
        self.queue.emit(worker_tasks_topic(group), run.id, worker_task.to_json())
        return worker_task

    def kill(self, execution_id: str, task_run_id: str | None = None) -> None:
        order = KillOrder(execution_id=execution_id, task_run_id=task_run_id)
        self.queue.emit(KILLS, execution_id, order.to_json())

    def all_results(self) -> list[WorkerTaskResult]:
        out = []
        for record in self.results.records:
            assert record.value is not None
            message = EXECUTOR_INPUT.validate_json(record.value)
            if isinstance(message, TaskResult):
                out.append(message.result)
            else:
                assert isinstance(message, WorkerDied)
        return out

    def handed_back(self, task: WorkerTask) -> list[WorkerDied]:
        """The hand-backs of ``task`` (a stopping worker's message in place of a result)."""
        out = []
        for record in self.results.records:
            message = EXECUTOR_INPUT.validate_json(record.value or b"")
            if isinstance(message, WorkerDied) and message.task_run_id == task.task_run.id:
                out.append(message)
        return out

    def results_of(self, task: WorkerTask) -> list[WorkerTaskResult]:
        return [r for r in self.all_results() if r.task_run_id == task.task_run.id]

    def final(self, task: WorkerTask, timeout: float = DEADLINE) -> WorkerTaskResult:
        def ended(_: list[Record]) -> bool:
            return any(r.state.terminal for r in self.results_of(task))

        self.results.wait_for(ended, timeout)
        return next(r for r in self.results_of(task) if r.state.terminal)

    def wait_running(self, task: WorkerTask) -> None:
        self.results.wait_for(
            lambda _: any(r.state == State.RUNNING for r in self.results_of(task))
        )

    def logs_of(self, task: WorkerTask) -> list[LogEntry]:
        while batch := self.logs.sub.poll(timeout=0.01):
            self.logs.records.extend(batch)
        entries = [LogEntry.model_validate_json(r.value or b"") for r in self.logs.records]
        return [e for e in entries if e.task_run_id == task.task_run.id]

    def run(
        self, task: dict[str, Any], variables: dict[str, Any] | None = None
    ) -> tuple[WorkerTaskResult, list[LogEntry]]:
        submitted = self.submit(task, variables)
        result = self.final(submitted)
        return result, self.logs_of(submitted)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    queue = SqliteQueue(SqliteDatabase(":memory:"))
    h = Harness(queue, LocalStorage(tmp_path / "storage"))
    yield h
    for worker in h.workers:
        worker.stop(drain_timeout=0)
    queue.close()


@pytest.fixture
def running(harness: Harness) -> Harness:
    """A harness with one worker already started."""
    harness.worker()
    return harness
