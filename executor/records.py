"""The records a step's result sends, on the topics of DESIGN.md: one mapping for every shell."""

from __future__ import annotations

from common.queue import base as topics
from common.queue.base import Outgoing

from .core import StepResult


def step_records(result: StepResult) -> list[Outgoing]:
    """Worker tasks, inputs of other executions, kill orders and logs of ``result``."""
    records: list[Outgoing] = []
    for wt in result.worker_tasks:
        records.append((topics.worker_tasks_topic(wt.worker_group), wt.task_run.id, wt.to_json()))
    for inp in result.executor_inputs:
        records.append((topics.EXECUTOR, inp.execution_id, inp.to_json()))
    for order in result.kill_orders:
        records.append((topics.KILLS, order.execution_id, order.to_json()))
    for entry in result.logs:
        records.append((topics.LOGS, entry.execution_id, entry.to_json()))
    return records
