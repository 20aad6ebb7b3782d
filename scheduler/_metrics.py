"""Prometheus metrics of the scheduler (``lanner_scheduler_<what>_<unit>``), on the default
registry the management port serves. No label carries a flow or trigger id."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True)
class _SchedulerMetrics:
    tick: Histogram
    evaluated: Counter
    emitted: Counter
    flows: Gauge


SCHEDULER_METRICS = _SchedulerMetrics(
    tick=Histogram(
        "lanner_scheduler_loop_duration_seconds",
        "One tick: read flow changes, evaluate every Schedule trigger, store and emit",
        buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    ),
    evaluated=Counter("lanner_scheduler_triggers_evaluated_total", "Schedule triggers evaluated"),
    emitted=Counter(
        "lanner_scheduler_executions_emitted_total", "Scheduled executions sent to the executor"
    ),
    flows=Gauge(
        "lanner_scheduler_flows", "Flows this scheduler evaluates (on Kafka: of its partitions)"
    ),
)
