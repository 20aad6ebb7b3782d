"""Durable queue on SQLite, for the embedded server.

Records are rows of one table, each with its topic, partition and offset. The offset is the
table's autoincrement: unique and increasing over the whole database, so it is monotonic within
each partition as Kafka's is, though not contiguous (Kafka's are not either, after compaction or
transaction markers). A record's partition comes from a stable hash of its key (crc32), so the
records of one key keep their order; a None key goes round robin. Committed offsets are rows per
(group, topic, partition): the offset of the last record processed.

Consumer groups, their members, leases and partition ownership live in the same database
(``sqlite_groups``), so members in several processes on one file share partitions as Kafka's
do. Members in this process are woken by an event on commit, so latency does not depend on a
polling interval. Records written by another process are seen within ``cross_process_poll``:
one watcher thread per queue, running while a subscription waits, reads the writer connection's
data version (which only another connection's commit changes) and wakes them all.

A SIGKILL loses nothing that ``emit`` returned from: the transaction committed (WAL) before it
returned. ``transaction()`` is joinable: the embedded executor stores its state, emits its
messages and commits its offsets in one transaction, which makes it exactly-once in this mode.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from common.errors import MessageTooLargeError, QueueError

from .base import AssignmentCallback, Outgoing
from .sqlite_groups import GROUP_PREFIX, GROUP_SCHEMA, Run, group_key
from .sqlite_purge import Purger
from .sqlite_subscription import SqliteSubscription

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_records (
    offset INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key TEXT,
    value BLOB,
    partition INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS queue_topics (
    topic TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL
);
"""
# Polls read a topic in offset order, whatever partitions they hold: (topic, offset) serves
# them all with one ordered range scan (the partition is a filter on it). One scan per partition
# of a (topic, partition, offset) index, merged by a sort, made a 200-record poll 10x slower.
_INDEX = """
CREATE INDEX IF NOT EXISTS queue_records_topic ON queue_records (topic, offset);
"""

DEFAULT_PARTITIONS = 4
DEFAULT_MAX_RECORD_BYTES = 1_000_000


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
        # group membership changes committed through this connection, by any queue on it
        self.membership_changes = 0

    @property
    def shared(self) -> bool:
        """True for an in-memory database: one connection, no other process can open it."""
        return self._shared

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _reader(self) -> sqlite3.Connection:
        reader: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if reader is None:
            reader = self._local.conn = self._connect()
        return reader

    def query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """Rows of a read; inside this thread's transaction it sees that transaction's writes."""
        if self._shared or self._owner == threading.get_ident():
            with self.lock:
                return self.conn.execute(sql, tuple(params)).fetchall()
        return self._reader().execute(sql, tuple(params)).fetchall()

    def foreign_version(self) -> int:
        """Changes when another connection (another process) commits, never when this one
        does: the data version of the writer connection, which every write of this process
        goes through."""
        with self.lock:
            return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a nested call joins the enclosing one (same thread)."""
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
                    if self.conn.in_transaction:  # SQLite rolled back itself on a full disk
                        self.conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._owner = None
                try:
                    self.conn.execute("COMMIT")
                except BaseException:
                    # SQLite may keep the transaction open after a failed COMMIT (disk full,
                    # busy): left open, every later BEGIN of this connection would fail
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
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
    """The ``Queue`` of the embedded mode.

    Args:
        db: the database (shared with the executor state and the repository).
        partitions: partitions of a topic created from now on (an existing topic keeps its
            count, as in Kafka).
        session_timeout: seconds a member of a group stays in it without polling; a member of a
            process that is gone is dropped at once.
        cross_process_poll: seconds between looks for records written by another process.
        max_record_bytes: larger records (key + value) raise ``MessageTooLargeError``.
    """

    def __init__(
        self,
        db: SqliteDatabase,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        session_timeout: float = 10.0,
        cross_process_poll: float = 0.1,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.db = db
        self.default_partitions = partitions
        self.session_timeout = session_timeout
        self.cross_process_poll = cross_process_poll
        self.max_record_bytes = max_record_bytes
        with db.lock:
            db.conn.executescript(_SCHEMA + _INDEX)
            _migrate(db.conn, partitions)
        self._partitions: dict[str, int] = {}
        self._round_robin = itertools.count()
        # Each subscription has its own event, set when a transaction that wrote to one of its
        # topics (or changed its group) commits: an emit wakes only the consumers of that topic.
        self._waiters: dict[str, set[threading.Event]] = {}
        self._waiters_lock = threading.Lock()
        self._pending: set[str] = set()
        self._group_versions: dict[str, int] = {}
        self._purger: Purger | None = None
        self._watcher = _Watcher(self) if not db.shared else None
        db.on_commit(self._notify_if_pending)

    # ------------------------------------------------------------------ wake-ups
    def _notify_if_pending(self) -> None:
        if not self._pending:
            return
        written, self._pending = self._pending, set()
        with self._waiters_lock:
            for name in written:
                if name.startswith(GROUP_PREFIX):
                    self._group_versions[name] = self._group_versions.get(name, 0) + 1
                    self.db.membership_changes += 1  # under the database lock (after commit)
            events = {e for name in written for e in self._waiters.get(name, ())}
        for event in events:
            event.set()

    def group_version(self, group: str) -> int:
        """Counts the membership changes of ``group`` committed in this process."""
        return self._group_versions.get(group_key(group), 0)

    def touch(self, names: Sequence[str]) -> None:
        """Wake, once the current transaction commits, the subscriptions registered on these."""
        self._pending.update(names)

    def wait(self, event: threading.Event, seconds: float) -> None:
        """Wait on a subscription's ``event`` (set by a commit of this process that touches
        what it registered, or by the watcher when another process commits)."""
        if self._watcher is None:
            event.wait(seconds)
            return
        with self._watcher.watching():
            event.wait(seconds)

    def wake_all(self) -> None:
        with self._waiters_lock:
            events = {e for waiting in self._waiters.values() for e in waiting}
        for event in events:
            event.set()

    def register(self, names: Sequence[str], event: threading.Event) -> None:
        with self._waiters_lock:
            for name in names:
                self._waiters.setdefault(name, set()).add(event)

    def unregister(self, names: Sequence[str], event: threading.Event) -> None:
        with self._waiters_lock:
            for name in names:
                self._waiters.get(name, set()).discard(event)

    # ------------------------------------------------------------------ topics
    def partitions(self, topic: str) -> int:
        known = self._partitions.get(topic)
        if known is not None:
            return known
        with self.db.transaction() as conn:
            return self.ensure_topic(conn, topic)

    def known_partitions(self, run: Run, topic: str) -> int:
        """The partition count of ``topic`` without creating it (any read will do)."""
        known = self._partitions.get(topic)
        if known is not None:
            return known
        rows = run("SELECT partitions FROM queue_topics WHERE topic = ?", (topic,))
        if not rows:
            return self.default_partitions
        self._partitions[topic] = int(rows[0][0])
        return self._partitions[topic]

    def ensure_topic(self, conn: sqlite3.Connection, topic: str) -> int:
        """The topic's partition count, creating the topic (in ``conn``'s transaction)."""
        known = self._partitions.get(topic)
        if known is not None:
            return known
        conn.execute(
            "INSERT OR IGNORE INTO queue_topics (topic, partitions) VALUES (?, ?)",
            (topic, self.default_partitions),
        )
        count = int(
            conn.execute(
                "SELECT partitions FROM queue_topics WHERE topic = ?", (topic,)
            ).fetchone()[0]
        )
        self._partitions[topic] = count
        return count

    def _partition(self, conn: sqlite3.Connection, topic: str, key: str | None) -> int:
        count = self.ensure_topic(conn, topic)
        if key is None:
            return next(self._round_robin) % count
        return zlib.crc32(key.encode()) % count

    # ------------------------------------------------------------------ produce
    def emit(self, topic: str, key: str | None, value: bytes | None) -> None:
        self.emit_many([(topic, key, value)])

    def emit_many(self, records: Sequence[Outgoing]) -> None:
        if not records:
            return
        for topic, key, value in records:
            size = len(key.encode()) if key else 0
            size += len(value) if value else 0
            if size > self.max_record_bytes:
                raise MessageTooLargeError(
                    f"a record of {size} bytes for topic '{topic}' (key {key!r}) is over the "
                    f"queue's limit of {self.max_record_bytes} bytes"
                )
        try:
            with self.db.transaction() as conn:
                conn.executemany(
                    "INSERT INTO queue_records (topic, partition, key, value) VALUES (?, ?, ?, ?)",
                    [(t, self._partition(conn, t, k), k, v) for t, k, v in records],
                )
                self._pending.update(r[0] for r in records)
        except sqlite3.Error as exc:
            raise QueueError(f"cannot write to the embedded queue {self.db.path}: {exc}") from exc

    # ------------------------------------------------------------------ consume
    def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        *,
        from_latest: bool = False,
        on_assigned: AssignmentCallback | None = None,
        on_revoked: AssignmentCallback | None = None,
        instance_id: str | None = None,
    ) -> SqliteSubscription:
        return SqliteSubscription(
            self,
            list(topics),
            group,
            from_latest=from_latest,
            on_assigned=on_assigned,
            on_revoked=on_revoked,
            instance_id=instance_id,
        )

    # ------------------------------------------------------------------ purge
    def start_purging(self, interval: float = 10.0, retain: int = 1000) -> None:
        """Delete consumed records in the background (``sqlite_purge``) until ``close()``."""
        if self._purger is None:
            self._purger = Purger(self, interval=interval, retain=retain)
            self._purger.start()

    def purge(self, retain: int = 1000) -> int:
        """One purge pass now; returns the number of records deleted."""
        return Purger(self, retain=retain).purge_once()

    def close(self) -> None:
        if self._purger is not None:
            self._purger.stop()
            self._purger = None
        if self._watcher is not None:
            self._watcher.close()
        self.wake_all()


class _Watcher:
    """Wakes every waiting subscription of ``queue`` when another connection commits.

    One per queue, not one per subscription: each ``cross_process_poll`` while at least one
    subscription waits, it reads ``foreign_version()`` once. Commits of this process do not
    change it (they wake the subscriptions concerned themselves), so a busy embedded server does
    not wake its idle consumers ten times a second. The version is read from the start: a
    commit made before a subscription first waits is seen at the watcher's first look.

    A subscription that starts waiting wakes the watcher only when nobody was waiting (it sleeps
    without a timeout then), and a look is never sooner than ``cross_process_poll`` after the
    previous one: on a busy server the consumers start and stop waiting thousands of times a
    second, and a look per wait (a PRAGMA under the writer's lock) cost more than the polls.
    """

    def __init__(self, queue: SqliteQueue) -> None:
        self._queue = queue
        self._cond = threading.Condition()
        self._waiting = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._version = queue.db.foreign_version()

    @contextmanager
    def watching(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="lanner-queue-watcher", daemon=True
                )
                self._thread.start()
            if self._waiting == 1:  # the watcher may sleep until someone waits
                self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._waiting -= 1

    def _run(self) -> None:
        next_look = 0.0
        while True:
            with self._cond:
                while not self._closed:
                    if not self._waiting:
                        self._cond.wait()
                        continue
                    now = time.monotonic()
                    if now >= next_look:
                        break
                    self._cond.wait(next_look - now)
                if self._closed:
                    return
            try:
                version = self._queue.db.foreign_version()
            except sqlite3.Error:  # closed under us
                return
            next_look = time.monotonic() + self._queue.cross_process_poll
            if version != self._version:
                self._version = version
                self._queue.wake_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)


def _migrate(conn: sqlite3.Connection, partitions: int) -> None:
    """Databases of the single-partition queue, in one transaction: their records stay in
    partition 0 (the column's default) and each group's offset becomes its offset in every
    partition (offsets are global, so it still means "everything up to here was processed").
    Their groups do not hold records back until they subscribe again (a live view's group
    never will)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(queue_offsets)")}
    old_offsets = bool(columns) and "partition" not in columns
    record_columns = {row[1] for row in conn.execute("PRAGMA table_info(queue_records)")}
    if not old_offsets and "partition" in record_columns:
        conn.executescript(GROUP_SCHEMA)
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "partition" not in record_columns:
            conn.execute(
                "ALTER TABLE queue_records ADD COLUMN partition INTEGER NOT NULL DEFAULT 0"
            )
        if old_offsets:
            conn.execute("ALTER TABLE queue_offsets RENAME TO queue_offsets_v1")
        for statement in GROUP_SCHEMA.split(";"):  # executescript would commit
            if statement.strip():
                conn.execute(statement)
        if old_offsets:
            conn.execute(
                "INSERT OR IGNORE INTO queue_topics (topic, partitions) "
                "SELECT DISTINCT topic, ? FROM queue_records",
                (partitions,),
            )
            for partition in range(partitions):
                conn.execute(
                    "INSERT INTO queue_offsets (grp, topic, partition, offset) "
                    "SELECT grp, topic, ?, offset FROM queue_offsets_v1",
                    (partition,),
                )
            conn.execute(
                "INSERT OR IGNORE INTO queue_subscriptions (grp, topic, durable) "
                "SELECT grp, topic, 0 FROM queue_offsets_v1"
            )
            conn.execute("DROP TABLE queue_offsets_v1")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
