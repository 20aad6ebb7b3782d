"""API token records on the compacted ``tokens`` topic, for webservers on Kafka.

Every webserver reads the topic from its start into memory (no group offsets: each replica sees
every record) and keeps reading, so a revocation written by any replica or by
``lanner token revoke`` reaches all of them within the reader's poll (a fraction of a second);
the replica that wrote it waits until it has read it back before answering. Nothing depends on
Elasticsearch: tokens keep working while it is down. A token id the replica does not know yet
(created a moment ago elsewhere) makes it read to the topic's end once before refusing; only a
correctly signed token can cause that read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from common.auth.tokens import TokenRecord
from common.queue.kafka_client import KafkaProducer, create_consumer
from common.queue.kafka_topics import topic_name

if TYPE_CHECKING:
    from common.settings import Settings

log = logging.getLogger("lanner.auth")
_PARTITION = 0


class KafkaTokenStore:
    """``start()`` (reads the topic to its end), then a ``TokenStore``; ``stop()``."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._records: dict[str, TokenRecord] = {}
        self._position = 0
        self._read = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaTokenStore:
        return cls(
            settings.kafka_bootstrap_servers, topic_name("tokens", settings.kafka_topic_prefix)
        )

    def start(self) -> None:
        self._consumer = create_consumer(
            self.bootstrap_servers, f"lanner-tokens-reader-{uuid.uuid4().hex}"
        )
        self._consumer.assign([TopicPartition(self.topic, _PARTITION, OFFSET_BEGINNING)])
        self._probe = create_consumer(
            self.bootstrap_servers, f"lanner-tokens-probe-{uuid.uuid4().hex}"
        )
        self._producer = KafkaProducer(self.bootstrap_servers, "lanner-tokens")
        self._thread = threading.Thread(target=self._run, name="lanner-tokens", daemon=True)
        self._thread.start()
        self.sync()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._consumer.close()
            self._probe.close()
            self._producer.close()
            self._thread = None

    def sync(self, timeout: float = 30.0) -> bool:
        """Waits until every record written before this call is read; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._probe_lock:
            while True:
                try:
                    _low, end = self._probe.get_watermark_offsets(
                        TopicPartition(self.topic, _PARTITION), timeout=timeout, cached=False
                    )
                    break
                except KafkaException as exc:  # a topic created a moment ago: no leader yet
                    if time.monotonic() >= deadline:
                        raise
                    log.info("tokens topic end offset not read yet (%s); retrying", exc)
                    self._stop.wait(0.2)
        with self._read:
            while self._position < end:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("tokens topic not read to its end within %.0f s", timeout)
                    return False
                self._read.wait(remaining)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(500, 0.2)
            except Exception:  # noqa: BLE001 - the reader retries
                log.exception("reading the tokens topic failed; retrying")
                self._stop.wait(1.0)
                continue
            with self._read:
                for message in messages:
                    key, offset = message.key(), message.offset()
                    if message.error() is not None or key is None or offset is None:
                        continue
                    self._apply(key.decode(), message.value())
                    self._position = offset + 1
                if not messages:
                    try:
                        [position] = self._consumer.position(
                            [TopicPartition(self.topic, _PARTITION)]
                        )
                    except Exception:  # noqa: BLE001 - retried on the next pass
                        continue
                    if position.offset >= 0:
                        self._position = max(self._position, position.offset)
                self._read.notify_all()

    def _apply(self, key: str, value: bytes | None) -> None:
        if value is None:
            self._records.pop(key, None)
            return
        try:
            self._records[key] = TokenRecord.from_json(json.loads(value))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("undecodable record on the tokens topic (key %s): %s", key, exc)

    def _write(self, record: TokenRecord) -> None:
        self._producer.send(self.topic, record.id, json.dumps(record.to_json()).encode())
        self._producer.flush()
        self.sync()

    # ------------------------------------------------------------------ TokenStore
    def add(self, record: TokenRecord) -> None:
        self._write(record)

    def get(self, token_id: str) -> TokenRecord | None:
        with self._read:
            found = self._records.get(token_id)
        if found is None and self.sync(timeout=5.0):
            with self._read:
                found = self._records.get(token_id)
        return found

    def revoke(self, token_id: str) -> TokenRecord | None:
        record = self.get(token_id)
        if record is None:
            return None
        revoked = TokenRecord(**{**record.__dict__, "revoked": True})
        self._write(revoked)
        return revoked

    def list(self, tenant: str | None = None) -> list[TokenRecord]:
        with self._read:
            records = list(self._records.values())
        return sorted(
            (r for r in records if r.kind == "api" and (tenant is None or r.tenant == tenant)),
            key=lambda r: r.id,
        )

    def purge_expired(self, now: datetime) -> int:
        """Tombstones for the expired records: compaction then drops them from the topic."""
        with self._read:
            expired = [r.id for r in self._records.values() if r.expires <= now]
        for token_id in expired:
            self._producer.send(self.topic, token_id, None)
        if expired:
            self._producer.flush()
            self.sync()
        return len(expired)
