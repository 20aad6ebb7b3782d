"""A ``FlowSource`` fed by the compacted ``flows`` topic, for components on Kafka.

The executor on Kafka must not read the repository (it keeps running while Elasticsearch is
down), so it learns flows from the topic every deployment writes to. A thread reads the topic
from its start with a consumer of its own (no group offsets: every instance sees every flow),
keeps each revision it saw, and ``sync()`` waits until it has read what the topic held when
called: an execution created just after its flow was saved finds the flow.

Compaction keeps the latest revision of each flow: after a restart, an execution of an older
revision runs the latest one (the catalog falls back to it).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from common.queue.kafka_client import create_consumer
from common.repository.base import FlowRecord

log = logging.getLogger("lanner.flows")


class TopicFlowSource:
    """``start()``, ``sync()`` before trusting a miss, ``stop()``. Thread-safe."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._lock = threading.Lock()
        self._revisions: dict[tuple[str, str, str], dict[int, FlowRecord]] = {}
        self._latest: dict[tuple[str, str, str], FlowRecord] = {}
        # the partition each flow key is on: a scheduler replica owns the flows of its partitions
        self._partition: dict[tuple[str, str, str], int] = {}
        self._positions: dict[int, int] = {}  # partition -> next offset to read
        self._read = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.version = 0  # bumped on every change: the catalog drops its cache when it moves

    def start(self) -> None:
        self._consumer = create_consumer(
            self.bootstrap_servers, f"lanner-flows-reader-{uuid.uuid4().hex}"
        )
        metadata = self._consumer.list_topics(self.topic, timeout=30)
        partitions = sorted(metadata.topics[self.topic].partitions)
        self._consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._partitions = partitions
        # a consumer is not used from two threads: sync() asks the end offsets with its own
        self._probe = create_consumer(
            self.bootstrap_servers, f"lanner-flows-probe-{uuid.uuid4().hex}"
        )
        self._probe_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="lanner-flows", daemon=True)
        self._thread.start()
        self.sync()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._consumer.close()
            self._probe.close()

    def sync(self, timeout: float = 30.0) -> None:
        """Waits until every flow written before this call is known."""
        deadline = time.monotonic() + timeout
        ends = {}
        with self._probe_lock:
            for partition in self._partitions:
                while True:
                    try:
                        _low, high = self._probe.get_watermark_offsets(
                            TopicPartition(self.topic, partition), timeout=timeout, cached=False
                        )
                        break
                    except KafkaException as exc:
                        # a topic created a moment ago has no leader yet: ask again
                        if time.monotonic() >= deadline:
                            raise
                        log.info("flows topic end offsets not read yet (%s); retrying", exc)
                        time.sleep(0.2)
                ends[partition] = high
        with self._read:
            while any(self._positions.get(p, 0) < end for p, end in ends.items() if end > 0):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("flows topic not read to its end within %.0f s", timeout)
                    return
                self._read.wait(remaining)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(500, 0.2)
            except Exception:  # noqa: BLE001 - the reader retries; the executor keeps going
                log.exception("reading the flows topic failed; retrying")
                self._stop.wait(1.0)
                continue
            with self._read:
                for message in messages:
                    if message.error() is not None:
                        continue
                    self._apply(message.key(), message.value(), message.partition())
                    self._positions[message.partition()] = message.offset() + 1
                if messages:
                    self.version += 1
                self._read.notify_all()
            if not messages:
                # a partition with nothing new: its position is its end
                for partition in self._partitions:
                    try:
                        position = self._consumer.position([TopicPartition(self.topic, partition)])[
                            0
                        ].offset
                    except Exception:  # noqa: BLE001 - retried on the next pass
                        continue
                    if position >= 0:
                        with self._read:
                            self._positions[partition] = max(
                                self._positions.get(partition, 0), position
                            )
                            self._read.notify_all()

    def _apply(self, key: bytes | None, value: bytes | None, partition: int) -> None:
        if key is None:
            return
        parts = key.decode().split("/", 2)
        if len(parts) != 3:
            return
        ident = (parts[0], parts[1], parts[2])
        self._partition[ident] = partition
        if value is None:  # a tombstone: the flow is deleted
            self._latest.pop(ident, None)
            return
        try:
            body = json.loads(value)
            record = FlowRecord(
                tenant_id=body["tenant"],
                namespace=body["namespace"],
                id=body["id"],
                revision=int(body["revision"]),
                source=body["source"],
                updated=datetime.now(UTC),
                deleted=bool(body.get("deleted")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.error("undecodable record on the flows topic (key %s): %s", key, exc)
            return
        self._revisions.setdefault(ident, {})[record.revision] = record
        if record.deleted:
            self._latest.pop(ident, None)
        else:
            self._latest[ident] = record

    # ------------------------------------------------------------------ FlowSource
    def get(
        self, tenant_id: str, namespace: str, flow_id: str, revision: int | None = None
    ) -> FlowRecord | None:
        with self._lock:
            ident = (tenant_id, namespace, flow_id)
            if revision is None:
                return self._latest.get(ident)
            return self._revisions.get(ident, {}).get(revision)

    def find(
        self, tenant_id: str, namespace: str | None = None, q: str | None = None
    ) -> list[FlowRecord]:
        with self._lock:
            return [
                record
                for (tenant, ns, _), record in self._latest.items()
                if tenant == tenant_id and (namespace is None or ns == namespace)
            ]

    def on_partitions(
        self, partitions: set[int]
    ) -> tuple[list[FlowRecord], set[tuple[str, str, str]]]:
        """The latest revision of every live flow on ``partitions``, and the keys of the flows
        deleted there."""
        with self._lock:
            live = [r for k, r in self._latest.items() if self._partition.get(k) in partitions]
            gone = {
                k for k, p in self._partition.items() if p in partitions and k not in self._latest
            }
        return live, gone

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted({tenant for tenant, _, _ in self._latest})
