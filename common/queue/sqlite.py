"""Durable in-process queue on SQLite, for the embedded server.

Records are rows of one table; each consumer group's committed offset is a row of another.
Consumers in this process are woken by a condition variable on ``emit``, so latency does not
depend on a polling interval. A SIGKILL loses nothing that ``emit`` returned from: the
transaction committed (WAL) before it returned.

``transaction()`` lets the embedded executor store its state, emit its messages and commit its
offsets atomically, which makes it exactly-once in this mode.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from common.errors import QueueError

from .base import Record

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_records (
    offset INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key TEXT,
    value BLOB
);
CREATE INDEX IF NOT EXISTS queue_records_topic ON queue_records (topic, offset);
CREATE TABLE IF NOT EXISTS queue_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic)
);
"""


class SqliteDatabase:
    """One SQLite file shared by the embedded queue, executor state and repository.

    A single connection behind a re-entrant lock: SQLite has one writer at a time anyway, and one
    connection lets a transaction span queue, state and repository tables.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self._depth = 0
        self._hooks: list[Callable[[], None]] = []

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            outer = self._depth == 0
            if outer:
                self.conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self.conn.execute("COMMIT")
                self.after_commit()

    def after_commit(self) -> None:
        for hook in self._hooks:
            hook()

    def on_commit(self, hook: Callable[[], None]) -> None:
        self._hooks.append(hook)

    def executescript(self, script: str) -> None:
        with self.lock:
            self.conn.executescript(script)

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class SqliteQueue:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        db.executescript(_SCHEMA)
        self._changed = threading.Condition()
        self._version = 0
        self._pending = False
        db.on_commit(self._notify_if_pending)

    def _notify_if_pending(self) -> None:
        if self._pending:
            self._pending = False
            with self._changed:
                self._version += 1
                self._changed.notify_all()

    def emit(self, topic: str, key: str | None, value: bytes | None) -> None:
        self.emit_many([(topic, key, value)])

    def emit_many(self, records: Sequence[tuple[str, str | None, bytes | None]]) -> None:
        if not records:
            return
        try:
            with self.db.transaction() as conn:
                conn.executemany(
                    "INSERT INTO queue_records (topic, key, value) VALUES (?, ?, ?)", records
                )
                self._pending = True
        except sqlite3.Error as exc:
            raise QueueError(f"cannot write to the embedded queue {self.db.path}: {exc}") from exc

    def subscribe(
        self, topics: Sequence[str], group: str, *, from_latest: bool = False
    ) -> SqliteSubscription:
        return SqliteSubscription(self, list(topics), group, from_latest)

    def wait_change(self, seen_version: int, timeout: float) -> int:
        with self._changed:
            if self._version == seen_version:
                self._changed.wait(timeout)
            return self._version

    def close(self) -> None:
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def purge(self, keep_last: int = 10_000) -> int:
        """Delete records every group has committed, keeping the newest ``keep_last``."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT MIN(offset) FROM queue_offsets").fetchone()
            low = row[0] if row and row[0] is not None else 0
            top = conn.execute("SELECT MAX(offset) FROM queue_records").fetchone()[0] or 0
            bound = min(low, top - keep_last)
            cur = conn.execute("DELETE FROM queue_records WHERE offset <= ?", (bound,))
            return cur.rowcount


class SqliteSubscription:
    def __init__(
        self, queue: SqliteQueue, topics: list[str], group: str, from_latest: bool = False
    ) -> None:
        self.queue = queue
        self.topics = topics
        self.group = group
        self._closed = False
        with queue.db.lock:
            marks = ",".join("?" * len(topics))
            rows = queue.db.conn.execute(
                f"SELECT MIN(offset) FROM queue_offsets WHERE grp = ? AND topic IN ({marks})",
                (group, *topics),
            ).fetchone()
            known = queue.db.conn.execute(
                f"SELECT COUNT(*) FROM queue_offsets WHERE grp = ? AND topic IN ({marks})",
                (group, *topics),
            ).fetchone()[0]
            newest = queue.db.conn.execute("SELECT MAX(offset) FROM queue_records").fetchone()[0]
        if known == len(topics) and rows[0] is not None:
            self._position = rows[0]
        else:  # Kafka's auto.offset.reset: earliest, or latest for live views
            self._position = (newest or 0) if from_latest else 0
        self._query = (
            f"SELECT offset, topic, key, value FROM queue_records WHERE topic IN ({marks}) "
            "AND offset > ? ORDER BY offset LIMIT ?"
        )

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        version = self.queue._version
        for _ in range(2):
            if self._closed:
                return []
            with self.queue.db.lock:
                rows = self.queue.db.conn.execute(
                    self._query, (*self.topics, self._position, max_records)
                ).fetchall()
            if rows:
                self._position = rows[-1][0]
                return [Record(topic=r[1], key=r[2], value=r[3], offset=r[0]) for r in rows]
            version = self.queue.wait_change(version, timeout)
        return []

    def commit(self, records: Sequence[Record]) -> None:
        if not records:
            return
        last = max(r.offset for r in records)
        with self.queue.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO queue_offsets (grp, topic, offset) VALUES (?, ?, ?) "
                "ON CONFLICT (grp, topic) DO UPDATE SET offset = MAX(offset, excluded.offset)",
                [(self.group, t, last) for t in self.topics],
            )

    def close(self) -> None:
        self._closed = True
