"""Prometheus metrics of the executor (``lanner_executor_*``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from common.models.execution import Execution
from common.models.state import State


@dataclass(frozen=True)
class _ExecutorMetrics:
    inputs: Counter
    created: Counter
    started: Counter
    ended: Counter
    duration: Histogram
    resubmitted: Counter
    errors: Counter
    batch_seconds: Histogram
    partitions: Gauge
    table_keys: Gauge
    lag: Gauge


EXECUTOR_METRICS = _ExecutorMetrics(
    inputs=Counter("lanner_executor_inputs_total", "Executor inputs applied", ["kind"]),
    created=Counter(
        "lanner_executor_executions_created_total", "Executions created", ["namespace", "flow"]
    ),
    started=Counter(
        "lanner_executor_executions_started_total",
        "Executions that started running (created, dequeued or restarted)",
        ["namespace", "flow"],
    ),
    ended=Counter(
        "lanner_executor_executions_ended_total",
        "Executions ended, by final state",
        ["state", "namespace", "flow"],
    ),
    duration=Histogram(
        "lanner_executor_execution_duration_seconds",
        "Duration of ended executions, from creation to end",
        ["namespace", "flow"],
        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400),
    ),
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
    table_keys=Gauge(
        "lanner_executor_table_keys",
        "Keys of the executor's state tables on this instance's partitions (RocksDB estimate)",
        ["table"],
    ),
    lag=Gauge(
        "lanner_executor_consumer_lag_records",
        "Records of the executor's input topics not yet committed by this instance",
        ["topic"],
    ),
)

_STARTS = (State.CREATED, State.QUEUED, State.RESTARTED)


def observe_step(
    kind: str, previous: State | None, execution: Execution, ended: bool, now: datetime
) -> None:
    """Counts one applied input and the transitions of the execution it moved."""
    EXECUTOR_METRICS.inputs.labels(kind=kind).inc()
    where = {"namespace": execution.namespace, "flow": execution.flow_id}
    current = execution.state.current
    if previous is None:
        EXECUTOR_METRICS.created.labels(**where).inc()
    if current == State.RUNNING and (previous is None or previous in _STARTS):
        EXECUTOR_METRICS.started.labels(**where).inc()
    if ended:
        EXECUTOR_METRICS.ended.labels(state=current.value, **where).inc()
        duration = execution.state.duration(now).total_seconds()
        EXECUTOR_METRICS.duration.labels(**where).observe(max(duration, 0.0))
