"""Records over the queue's size limit travel through internal storage.

An execution with thousands of task runs, or a worker task carrying large variables, can be
larger than what a Kafka record may hold (``queue_max_record_bytes``). Such a value is written
to internal storage under ``_queue/<topic>/<sha256>`` and the record carries a reference (a
marker no JSON value starts with); a reader gets the original bytes back. The name is the
content's hash, so a retried write is the same file. ``OffloadingQueue`` wraps any ``Queue``;
the Faust executor uses ``Offloader`` directly on what it sends and receives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from common.storage.base import SCHEME, Storage

from .base import AssignmentCallback, Outgoing, Queue, Record, Subscription, TopicPartition

MARKER = b"\x00lanner-offloaded:"
# key, framing and headers stay under the limit with this margin
_MARGIN = 1024


class Offloader:
    def __init__(self, storage: Storage, max_record_bytes: int) -> None:
        self.storage = storage
        self.limit = max(1, max_record_bytes - _MARGIN)

    def outgoing(self, topic: str, value: bytes | None) -> bytes | None:
        if value is None or len(value) <= self.limit:
            return value
        uri = f"{SCHEME}_queue/{topic}/{hashlib.sha256(value).hexdigest()}"
        self.storage.put(uri, value)
        return MARKER + uri.encode()

    def incoming(self, value: bytes | None) -> bytes | None:
        if value is None or not value.startswith(MARKER):
            return value
        return self.storage.get(value[len(MARKER) :].decode())

    def records_out(self, records: Sequence[Outgoing]) -> list[Outgoing]:
        return [(topic, key, self.outgoing(topic, value)) for topic, key, value in records]

    def records_in(self, records: list[Record]) -> list[Record]:
        if not any(r.value is not None and r.value.startswith(MARKER) for r in records):
            return records
        return [
            Record(r.topic, r.key, self.incoming(r.value), r.partition, r.offset) for r in records
        ]


class OffloadingSubscription:
    def __init__(self, inner: Subscription, offloader: Offloader) -> None:
        self.inner = inner
        self.offloader = offloader

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        return self.offloader.records_in(self.inner.poll(max_records, timeout))

    def commit(self, records: Sequence[Record]) -> None:
        self.inner.commit(records)

    def produce_and_commit(self, produce: Sequence[Outgoing], records: Sequence[Record]) -> None:
        self.inner.produce_and_commit(self.offloader.records_out(produce), records)

    def assignment(self) -> list[TopicPartition]:
        return self.inner.assignment()

    def pause(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        self.inner.pause(partitions)

    def resume(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        self.inner.resume(partitions)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # backend extras (a test's fencing checks)
        return getattr(self.inner, name)


class OffloadingQueue:
    def __init__(self, inner: Queue, storage: Storage, max_record_bytes: int) -> None:
        self.inner = inner
        self.offloader = Offloader(storage, max_record_bytes)

    def emit(self, topic: str, key: str | None, value: bytes | None) -> None:
        self.inner.emit(topic, key, self.offloader.outgoing(topic, value))

    def emit_many(self, records: Sequence[Outgoing]) -> None:
        self.inner.emit_many(self.offloader.records_out(records))

    def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        *,
        from_latest: bool = False,
        on_assigned: AssignmentCallback | None = None,
        on_revoked: AssignmentCallback | None = None,
        instance_id: str | None = None,
    ) -> OffloadingSubscription:
        inner = self.inner.subscribe(
            topics,
            group,
            from_latest=from_latest,
            on_assigned=on_assigned,
            on_revoked=on_revoked,
            instance_id=instance_id,
        )
        return OffloadingSubscription(inner, self.offloader)

    def partitions(self, topic: str) -> int:
        return self.inner.partitions(topic)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # backend extras (kafka_topic, start_purging...)
        return getattr(self.inner, name)
