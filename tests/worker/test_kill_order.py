"""A kill order that reaches the worker before its task: decided without comparing clocks.

The task run dates are written by the executor, on its clock; the worker's clock may differ.
Whether a remembered kill applies to a task that arrives later depends only on the order of
the two in the execution (its ``sequence``), never on dates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from common.ids import new_id
from common.models.execution import TaskRun
from common.models.messages import KillOrder, WorkerTask
from common.models.state import State
from common.queue.base import KILLS, worker_tasks_topic
from worker import Worker

from .conftest import Harness

SLEEP = {"id": "nap", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT60S"}
RETURN = {"id": "ret", "type": "io.kestra.plugin.core.debug.Return", "format": "ran"}


def _kill_first(harness: Harness, worker: Worker, execution_id: str, sequence: int) -> None:
    order = KillOrder(execution_id=execution_id, sequence=sequence)
    harness.queue.emit(KILLS, execution_id, order.to_json())
    harness.results.wait_for(lambda _: execution_id in worker._kills)


def _task(
    harness: Harness, execution_id: str, task: dict[str, Any], date: datetime, sequence: int
) -> WorkerTask:
    run = TaskRun(
        id=new_id(),
        execution_id=execution_id,
        namespace="company.team",
        flow_id="flow",
        task_id=str(task["id"]),
    )
    run.set_state(State.CREATED, date)
    worker_task = WorkerTask(task_run=run, task=task, variables={}, attempt=1, sequence=sequence)
    harness.queue.emit(worker_tasks_topic(None), run.id, worker_task.to_json())
    return worker_task


def test_a_kill_before_its_task_stops_it_when_the_executor_clock_is_ahead(
    harness: Harness,
) -> None:
    worker = harness.worker()
    execution_id = new_id()
    _kill_first(harness, worker, execution_id, sequence=4)
    # created before the kill (sequence 3), dated an hour ahead of the worker's clock
    ahead = datetime.now(UTC) + timedelta(hours=1)
    task = _task(harness, execution_id, SLEEP, ahead, sequence=3)
    assert harness.final(task, timeout=10).state == State.KILLED


def test_a_task_created_after_the_kill_runs_when_the_executor_clock_is_behind(
    harness: Harness,
) -> None:
    worker = harness.worker()
    execution_id = new_id()
    _kill_first(harness, worker, execution_id, sequence=4)
    # the execution was restarted after the kill: its new task comes later in the execution
    # (sequence 9) though it is dated an hour behind the worker's clock
    behind = datetime.now(UTC) - timedelta(hours=1)
    task = _task(harness, execution_id, RETURN, behind, sequence=9)
    assert harness.final(task).state == State.SUCCESS
