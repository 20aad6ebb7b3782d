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
from datetime import UTC, datetime

from common.queue.kafka_topic_reader import TopicReader
from common.repository.base import FlowRecord

log = logging.getLogger("lanner.flows")


class TopicFlowSource(TopicReader):
    """``start()``, ``sync()`` before trusting a miss, ``stop()``. Thread-safe."""

    what = "flows"

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        super().__init__(bootstrap_servers, topic)
        self._revisions: dict[tuple[str, str, str], dict[int, FlowRecord]] = {}
        self._latest: dict[tuple[str, str, str], FlowRecord] = {}
        # the partition each flow key is on: a scheduler replica owns the flows of its partitions
        self._partition: dict[tuple[str, str, str], int] = {}
        self.version = 0  # bumped on every change: the catalog drops its cache when it moves

    def _applied(self) -> None:
        self.version += 1

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
