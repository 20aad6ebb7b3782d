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
from datetime import datetime
from typing import TYPE_CHECKING

from common.auth.tokens import TokenRecord
from common.queue.kafka_client import KafkaProducer
from common.queue.kafka_topic_reader import TopicReader
from common.queue.kafka_topics import topic_name

if TYPE_CHECKING:
    from common.settings import Settings

log = logging.getLogger("lanner.auth")


class KafkaTokenStore(TopicReader):
    """``start()`` (reads the topic to its end), then a ``TokenStore``; ``stop()``."""

    what = "tokens"

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        super().__init__(bootstrap_servers, topic)
        self._records: dict[str, TokenRecord] = {}
        self._producer: KafkaProducer | None = None
        self._write_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaTokenStore:
        return cls(
            settings.kafka_bootstrap_servers, topic_name("tokens", settings.kafka_topic_prefix)
        )

    def start(self) -> None:
        self._producer = KafkaProducer(self.bootstrap_servers, "lanner-tokens")
        super().start()

    def stop(self) -> None:
        super().stop()
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def _apply(self, key: bytes | None, value: bytes | None, partition: int) -> None:
        if key is None:
            return
        token_id = key.decode()
        if value is None:
            self._records.pop(token_id, None)
            return
        try:
            self._records[token_id] = TokenRecord.from_json(json.loads(value))
        except (ValueError, KeyError, TypeError) as exc:
            log.error("undecodable record on the tokens topic (key %s): %s", token_id, exc)

    def _write(self, record: TokenRecord) -> None:
        assert self._producer is not None, "start() the store first"
        with self._write_lock:
            self._producer.send(self.topic, record.id, json.dumps(record.to_json()).encode())
            self._producer.flush()
        self.sync()

    # ------------------------------------------------------------------ TokenStore
    def add(self, record: TokenRecord) -> None:
        self._write(record)

    def get(self, token_id: str) -> TokenRecord | None:
        with self._lock:
            found = self._records.get(token_id)
        if found is None and self.sync(timeout=5.0):
            with self._lock:
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
        with self._lock:
            records = list(self._records.values())
        return sorted(
            (r for r in records if r.kind == "api" and (tenant is None or r.tenant == tenant)),
            key=lambda r: r.id,
        )

    def purge_expired(self, now: datetime) -> int:
        """Tombstones for the expired records: compaction then drops them from the topic."""
        with self._lock:
            expired = [r.id for r in self._records.values() if r.expires <= now]
        if not expired:
            return 0
        assert self._producer is not None, "start() the store first"
        with self._write_lock:
            for token_id in expired:
                self._producer.send(self.topic, token_id, None)
            self._producer.flush()
        self.sync()
        return len(expired)
