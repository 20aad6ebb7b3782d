"""Which flows a scheduler replica evaluates on Kafka: those on its partitions of ``flows``.

Every replica reads all flows (``TopicFlowSource``) and joins the consumer group ``scheduler``
on the ``flows`` topic only to be given partitions: a replica evaluates the Schedule triggers of
the flows whose key is on one of them. Adding or killing a replica moves partitions, never a
single trigger on its own, and a trigger has one evaluator at a time except during a handover.
A date a handover fires twice gives the same derived execution id, which the executor applies
once; the new owner reads the trigger states back from the ``triggers`` topic first, so it goes
on from the last date the previous owner stored.
"""

from __future__ import annotations

from common.flow.topic_source import TopicFlowSource
from common.queue.base import FLOWS, Queue
from common.repository.base import FlowRecord

GROUP = "scheduler"

FlowKey = tuple[str, str, str]


class PartitionOwnership:
    def __init__(self, queue: Queue, flows: TopicFlowSource) -> None:
        self.flows = flows
        self._election = queue.subscribe([FLOWS], GROUP)
        self.partitions: frozenset[int] = frozenset()
        self._version = -1

    def poll(self) -> tuple[bool, bool]:
        """Stays in the group; returns (partitions moved, flows changed) since the last call."""
        records = self._election.poll(500, timeout=0)  # only the assignment matters
        if records:
            self._election.commit(records)
        held = frozenset(tp.partition for tp in self._election.assignment() if tp.topic == FLOWS)
        moved, self.partitions = held != self.partitions, held
        version = self.flows.version
        changed, self._version = version != self._version, version
        return moved, changed

    def owned(self) -> tuple[list[FlowRecord], set[FlowKey]]:
        """The live flows this replica owns, and the keys of its flows that were deleted."""
        return self.flows.on_partitions(set(self.partitions))

    def describe(self) -> str:
        return f"flows partitions {sorted(self.partitions)}"

    def close(self) -> None:
        self._election.close()
