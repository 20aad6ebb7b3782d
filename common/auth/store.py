"""Where token records live, so that every webserver replica sees a revocation.

- embedded (SQLite queue): a table ``auth_tokens`` in the shared database; the CLI and the
  server open the same file, and each request reads one row by primary key.
- Kafka: the compacted topic ``tokens`` (key: token id, value: the record as JSON), read from
  its start by every webserver into memory (``common.auth.kafka_store``). It works while
  Elasticsearch is down, and a webserver holds no state of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from common.auth.tokens import TokenRecord

if TYPE_CHECKING:
    from common.settings import Settings


class TokenStore(Protocol):
    def add(self, record: TokenRecord) -> None: ...

    def get(self, token_id: str) -> TokenRecord | None: ...

    def revoke(self, token_id: str) -> TokenRecord | None:
        """The revoked record, or None when unknown."""
        ...

    def list(self, tenant: str | None = None) -> list[TokenRecord]:
        """API tokens (not sessions), of ``tenant`` or all."""
        ...

    def purge_expired(self, now: datetime) -> int:
        """Forget the records (tokens, sessions) expired before ``now``: how many."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_tokens (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    record TEXT NOT NULL
);
"""


class SqliteTokenStore:
    """Token records in the embedded database (``common.queue.sqlite.SqliteDatabase``)."""

    def __init__(self, db: object) -> None:
        from common.queue.sqlite import SqliteDatabase

        assert isinstance(db, SqliteDatabase)
        self.db = db
        db.executescript(_SCHEMA)

    def add(self, record: TokenRecord) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO auth_tokens (id, tenant, record) VALUES (?, ?, ?)",
                (record.id, record.tenant, json.dumps(record.to_json())),
            )

    def get(self, token_id: str) -> TokenRecord | None:
        rows = self.db.query("SELECT record FROM auth_tokens WHERE id = ?", (token_id,))
        return TokenRecord.from_json(json.loads(rows[0][0])) if rows else None

    def revoke(self, token_id: str) -> TokenRecord | None:
        with self.db.transaction():
            record = self.get(token_id)
            if record is None:
                return None
            revoked = TokenRecord(**{**record.__dict__, "revoked": True})
            self.add(revoked)
        return revoked

    def list(self, tenant: str | None = None) -> list[TokenRecord]:
        if tenant is None:
            rows = self.db.query("SELECT record FROM auth_tokens ORDER BY id")
        else:
            rows = self.db.query(
                "SELECT record FROM auth_tokens WHERE tenant = ? ORDER BY id", (tenant,)
            )
        records = [TokenRecord.from_json(json.loads(row[0])) for row in rows]
        return [record for record in records if record.kind == "api"]

    def purge_expired(self, now: datetime) -> int:
        rows = self.db.query("SELECT record FROM auth_tokens")
        expired = [
            record.id
            for record in (TokenRecord.from_json(json.loads(row[0])) for row in rows)
            if record.expires <= now
        ]
        if expired:
            with self.db.transaction() as conn:
                conn.executemany("DELETE FROM auth_tokens WHERE id = ?", [(i,) for i in expired])
        return len(expired)


@contextmanager
def open_token_store(settings: Settings) -> Iterator[TokenStore]:
    """The token store the settings' deployment shares (for the CLI): the embedded database's
    table, or the ``tokens`` topic on Kafka."""
    if settings.queue == "kafka":
        from common.auth.kafka_store import KafkaTokenStore

        kafka = KafkaTokenStore.from_settings(settings)
        kafka.start()
        try:
            yield kafka
        finally:
            kafka.stop()
        return
    from common.queue.sqlite import SqliteDatabase

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(str(settings.sqlite_path))
    try:
        yield SqliteTokenStore(db)
    finally:
        db.close()
