"""Prometheus metrics of the executor (``lanner_executor_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True)
class _ExecutorMetrics:
    inputs: Counter
    ended: Counter
    resubmitted: Counter
    errors: Counter
    batch_seconds: Histogram
    partitions: Gauge


EXECUTOR_METRICS = _ExecutorMetrics(
    inputs=Counter("lanner_executor_inputs_total", "Executor inputs applied", ["kind"]),
    ended=Counter("lanner_executor_executions_ended_total", "Executions ended", ["state"]),
    resubmitted=Counter(
        "lanner_executor_task_runs_resubmitted_total", "Task runs handed back from dead workers"
    ),
    errors=Counter("lanner_executor_loop_errors_total", "Unexpected errors of the executor loop"),
    batch_seconds=Histogram(
        "lanner_executor_batch_seconds", "Time to apply one polled batch of inputs"
    ),
    partitions=Gauge(
        "lanner_executor_partitions",
        "Partitions of the executor's input topics this instance processes",
        ["topic"],
    ),
)
