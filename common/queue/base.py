"""The queue interface every component talks through.

A queue is a set of named topics of keyed byte records. ``emit`` appends; a ``Subscription``
of a consumer ``group`` reads each record of its topics once per group, in order per key, and
``commit`` records progress so a restarted consumer resumes after what it acknowledged.
Decoding is done by the caller with the pydantic models of ``common.models``.

Topic names are the logical names of DESIGN.md (``executor``, ``worker-tasks``...); each backend
adds its prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# logical topic names (DESIGN.md "Kafka topics")
FLOWS = "flows"
EXECUTOR = "executor"
EXECUTIONS = "executions"
WORKER_TASKS = "worker-tasks"
WORKER_TRIGGERS = "worker-triggers"
WORKER_JOBS = "worker-jobs"
WORKERS = "workers"
KILLS = "kills"
TRIGGERS = "triggers"
LOGS = "logs"
METRICS = "metrics"

ALL_TOPICS = (
    FLOWS,
    EXECUTOR,
    EXECUTIONS,
    WORKER_TASKS,
    WORKER_TRIGGERS,
    WORKER_JOBS,
    WORKERS,
    KILLS,
    TRIGGERS,
    LOGS,
    METRICS,
)


def worker_tasks_topic(group: str | None) -> str:
    return f"{WORKER_TASKS}.{group}" if group else WORKER_TASKS


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: str | None
    value: bytes | None  # None is a tombstone
    offset: int


class Subscription(Protocol):
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Up to ``max_records`` records after the last one returned; waits up to ``timeout``."""
        ...

    def commit(self, records: Sequence[Record]) -> None:
        """Acknowledge every record up to and including these."""
        ...

    def close(self) -> None: ...


class Queue(Protocol):
    def emit(self, topic: str, key: str | None, value: bytes | None) -> None: ...

    def emit_many(self, records: Sequence[tuple[str, str | None, bytes | None]]) -> None:
        """Append several records atomically where the backend can."""
        ...

    def subscribe(
        self, topics: Sequence[str], group: str, *, from_latest: bool = False
    ) -> Subscription:
        """A group that never committed starts at the oldest record, or at the newest one when
        ``from_latest`` (live views that only want what comes next)."""
        ...

    def close(self) -> None: ...
