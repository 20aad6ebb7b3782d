"""Prometheus metrics of the worker (``lanner_worker_<what>_<unit>``).

Registered once per process on the default registry, which the management port serves. Labels
are bounded: a task type and a final state, never an execution or task run id. The gauges are
moved with ``inc``/``dec`` so several workers of one process (tests, ``server local``) add up.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

# seconds: a Return takes milliseconds, a script minutes
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


@dataclass(frozen=True)
class _WorkerMetrics:
    task_runs: Counter
    task_duration: Histogram
    queued: Histogram
    threads: Gauge
    running: Gauge
    pending: Gauge
    handed_back: Counter
    partitions: Gauge


WORKER_METRICS = _WorkerMetrics(
    task_runs=Counter(
        "lanner_worker_task_runs_total",
        "Task run attempts ended on this worker, by final state (RUNNING counts claims)",
        ["type", "state"],
    ),
    task_duration=Histogram(
        "lanner_worker_task_duration_seconds",
        "Time from the claim to the end of an attempt",
        ["type"],
        buckets=_DURATION_BUCKETS,
    ),
    queued=Histogram(
        "lanner_worker_task_queued_seconds",
        "Time between the executor creating an attempt and a worker claiming it (two clocks: "
        "a skew between the machines shows here)",
        buckets=_DURATION_BUCKETS,
    ),
    threads=Gauge("lanner_worker_pool_threads", "Threads of the worker pools of this process"),
    running=Gauge("lanner_worker_pool_running_tasks", "Attempts claimed and not yet ended"),
    pending=Gauge(
        "lanner_worker_pool_pending_tasks", "Attempts claimed and still waiting for a thread"
    ),
    handed_back=Counter(
        "lanner_worker_task_runs_handed_back_total",
        "Attempts a stopping worker handed back to the executor for a new attempt",
    ),
    partitions=Gauge(
        "lanner_worker_task_partitions",
        "Partitions of the worker-tasks topic (of its worker group) this worker takes tasks from",
        ["worker"],
    ),
)
