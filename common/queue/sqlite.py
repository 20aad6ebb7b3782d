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
from typing import Any

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

    Writes go through a single connection behind a re-entrant lock: SQLite has one writer at a
    time anyway, and one connection lets a transaction span queue, state and repository tables.
    Reads outside a transaction (``query``) use a connection per thread instead: in WAL mode
    they see every committed transaction and never wait for the writer's lock, so an API read
    or a consumer's poll is not held up by the executor's batch.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.conn = self._connect()
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._depth = 0
        self._owner: int | None = None
        self._hooks: list[Callable[[], None]] = []
        self._local = threading.local()
        self._shared = path == ":memory:" or path.startswith("file::memory:")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Rows of a read; inside this thread's transaction it sees that transaction's writes."""
        if self._shared or self._owner == threading.get_ident():
            with self.lock:
                return self.conn.execute(sql, tuple(params)).fetchall()
        reader: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if reader is None:
            reader = self._local.conn = self._connect()
        return reader.execute(sql, tuple(params)).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            outer = self._depth == 0
            if outer:
                self.conn.execute("BEGIN IMMEDIATE")
                self._owner = threading.get_ident()
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self._owner = None
                    self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._owner = None
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
        # Each subscription has its own event, set when a transaction that wrote to one of its
        # topics commits: an emit wakes only the consumers of that topic (waking every consumer
        # on every commit made each of them query SQLite under the shared lock for nothing).
        self._waiters: dict[str, set[threading.Event]] = {}
        self._waiters_lock = threading.Lock()
        self._pending: set[str] = set()
        db.on_commit(self._notify_if_pending)

    def _notify_if_pending(self) -> None:
        if not self._pending:
            return
        written, self._pending = self._pending, set()
        with self._waiters_lock:
            events = {e for topic in written for e in self._waiters.get(topic, ())}
        for event in events:
            event.set()

    def register(self, topics: Sequence[str], event: threading.Event) -> None:
        with self._waiters_lock:
            for topic in topics:
                self._waiters.setdefault(topic, set()).add(event)

    def unregister(self, topics: Sequence[str], event: threading.Event) -> None:
        with self._waiters_lock:
            for topic in topics:
                self._waiters.get(topic, set()).discard(event)

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
                self._pending.update(r[0] for r in records)
        except sqlite3.Error as exc:
            raise QueueError(f"cannot write to the embedded queue {self.db.path}: {exc}") from exc

    def subscribe(
        self, topics: Sequence[str], group: str, *, from_latest: bool = False
    ) -> SqliteSubscription:
        return SqliteSubscription(self, list(topics), group, from_latest)

    def close(self) -> None:
        with self._waiters_lock:
            events = {e for waiting in self._waiters.values() for e in waiting}
        for event in events:
            event.set()

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
        self._changed = threading.Event()
        queue.register(self.topics, self._changed)

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        for attempt in range(2):
            if self._closed:
                return []
            self._changed.clear()  # before the query: a commit after it sets it again
            rows = self.queue.db.query(self._query, (*self.topics, self._position, max_records))
            if rows:
                self._position = rows[-1][0]
                return [
                    Record(topic=r[1], key=r[2], value=r[3], partition=0, offset=r[0]) for r in rows
                ]
            if attempt == 0 and timeout > 0:
                self._changed.wait(timeout)
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
        self.queue.unregister(self.topics, self._changed)
        self._changed.set()
