"""The queue interface every component talks through.

A queue is a set of named topics of keyed byte records. Each topic is split into partitions; a
record's partition is chosen from its key, so the records of one key keep their order. A
``Subscription`` is one member of a consumer ``group``: the members of a group share the
partitions of its topics (each partition has one member at a time), so together they see every
record; ``commit`` records progress per partition, so a member that takes over a partition
resumes after what the previous owner acknowledged. Decoding is done by the caller with the
pydantic models of ``common.models``.

This is the shape Kafka has, and the embedded SQLite queue gives the same guarantees, so a
component written against it runs on both. Topic names are the logical names of DESIGN.md
(``executor``, ``worker-tasks``...); each backend adds its prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

# logical topic names (DESIGN.md "Kafka topics")
FLOWS = "flows"
EXECUTOR = "executor"
EXECUTOR_FLOWS = "executor-flows"
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
    EXECUTOR_FLOWS,
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


def worker_triggers_topic(group: str | None) -> str:
    return f"{WORKER_TRIGGERS}.{group}" if group else WORKER_TRIGGERS


class TopicPartition(NamedTuple):
    """A NamedTuple, not a dataclass: a poll or commit hashes these many times, and a tuple's
    hash and equality are C code."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: str | None
    value: bytes | None  # None is a tombstone
    partition: int
    offset: int

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


# a record to produce: (topic, key, value); value None is a tombstone
Outgoing = tuple[str, str | None, bytes | None]

# called with the partitions this member gains or loses, from inside ``poll`` (Kafka's rule):
# on revocation the member may still commit what it processed of them
AssignmentCallback = Callable[[list[TopicPartition]], None]


class Subscription(Protocol):
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        """Up to ``max_records`` records of the partitions assigned to this member, after the
        last ones returned; waits up to ``timeout`` seconds. Paused partitions return nothing
        but the member stays in its group (polling is what keeps it there)."""
        ...

    def commit(self, records: Sequence[Record]) -> None:
        """Acknowledge, per partition, every record up to and including the newest of these."""
        ...

    def produce_and_commit(self, produce: Sequence[Outgoing], records: Sequence[Record]) -> None:
        """Atomically produce ``produce`` and acknowledge ``records``: after a crash at any point
        either both are visible or neither (Kafka: one transaction with this member's stable
        transactional id, which fences a zombie instance; SQLite: one database transaction)."""
        ...

    def assignment(self) -> list[TopicPartition]:
        """The partitions this member holds now."""
        ...

    def pause(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        """Stop returning records of these partitions (all assigned ones when ``None``)."""
        ...

    def resume(self, partitions: Sequence[TopicPartition] | None = None) -> None: ...

    def close(self) -> None:
        """Leave the group: its partitions go to the other members at once."""
        ...


class Queue(Protocol):
    def emit(self, topic: str, key: str | None, value: bytes | None) -> None: ...

    def emit_many(self, records: Sequence[Outgoing]) -> None:
        """Append several records atomically where the backend can."""
        ...

    def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        *,
        from_latest: bool = False,
        on_assigned: AssignmentCallback | None = None,
        on_revoked: AssignmentCallback | None = None,
        instance_id: str | None = None,
    ) -> Subscription:
        """Join ``group`` as a new member. A group that never committed a partition starts it at
        the oldest record, or at the newest one when ``from_latest`` (live views that only want
        what comes next). ``instance_id``: stable per component instance (a worker id, a pod
        name); it names the member's transactional producer and static group membership."""
        ...

    def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has."""
        ...

    def close(self) -> None: ...
