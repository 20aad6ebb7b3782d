"""Where the scheduler keeps trigger states, and how it writes them with what it emits.

``commit`` stores the new states and appends the records (new executions, trigger states, logs)
together: on SQLite in one transaction, so a crash can never leave an execution emitted with its
trigger state unsaved (which would fire the date again after a restart) or the reverse (which
would lose the date). Even where atomicity is not available, a repeated date gives the same
derived execution id, which the executor applies once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Protocol

from common.errors import QueueError
from common.models.trigger import TriggerState, is_request_key
from common.queue.base import TRIGGERS, Queue
from common.queue.sqlite import SqliteDatabase, SqliteQueue

QueueRecord = tuple[str, str | None, bytes | None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scheduler_triggers (
    uid TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
"""


class TriggerStore(Protocol):
    def load(self) -> dict[str, TriggerState]:
        """Every stored state by trigger uid."""
        ...

    def commit(
        self,
        states: Sequence[TriggerState],
        deleted: Sequence[str],
        records: Sequence[QueueRecord],
    ) -> None:
        """Store ``states``, forget the uids in ``deleted`` and emit ``records``, atomically
        where the backend can."""
        ...


class SqliteTriggerStore:
    """Trigger states in a table of the embedded database, written in the queue's transaction."""

    def __init__(self, queue: SqliteQueue) -> None:
        self.queue = queue
        self.db: SqliteDatabase = queue.db
        self.db.executescript(_SCHEMA)

    def load(self) -> dict[str, TriggerState]:
        with self.db.lock:
            rows = self.db.conn.execute("SELECT uid, body FROM scheduler_triggers").fetchall()
        return {uid: TriggerState.model_validate_json(body) for uid, body in rows}

    def commit(
        self,
        states: Sequence[TriggerState],
        deleted: Sequence[str],
        records: Sequence[QueueRecord],
    ) -> None:
        # the states' records are among ``records``: their bodies are serialized once
        bodies = {key: value for topic, key, value in records if topic == TRIGGERS and value}
        try:
            with self.db.transaction() as conn:
                conn.executemany(
                    "INSERT INTO scheduler_triggers (uid, body) VALUES (?, ?) "
                    "ON CONFLICT (uid) DO UPDATE SET body = excluded.body",
                    [(s.uid, (bodies.get(s.uid) or s.to_json()).decode()) for s in states],
                )
                conn.executemany(
                    "DELETE FROM scheduler_triggers WHERE uid = ?", [(uid,) for uid in deleted]
                )
                self.queue.emit_many(records)  # joins this transaction
        except sqlite3.Error as exc:
            raise QueueError(f"cannot store trigger states in {self.db.path}: {exc}") from exc


class MemoryTriggerStore:
    """States in memory, records emitted after: for queues without a shared transaction.

    A restart forgets the states, so each trigger starts again from its next date (dates missed
    while down are not recovered).
    """

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.states: dict[str, TriggerState] = {}

    def load(self) -> dict[str, TriggerState]:
        return dict(self.states)

    def commit(
        self,
        states: Sequence[TriggerState],
        deleted: Sequence[str],
        records: Sequence[QueueRecord],
    ) -> None:
        self.queue.emit_many(records)
        for state in states:
            self.states[state.uid] = state
        for uid in deleted:
            self.states.pop(uid, None)


class TopicTriggerStore(MemoryTriggerStore):
    """States on the compacted ``triggers`` topic (Kafka): read at start, then every commit
    emits them after the executions. Not atomic, but in the order that loses nothing: a crash
    between the two fires the dates again after a restart, with the same derived execution ids,
    which the executor applies once."""

    def commit(
        self,
        states: Sequence[TriggerState],
        deleted: Sequence[str],
        records: Sequence[QueueRecord],
    ) -> None:
        self.queue.emit_many([r for r in records if r[0] != TRIGGERS])
        super().commit(states, deleted, [r for r in records if r[0] == TRIGGERS])

    def __init__(self, queue: Queue, bootstrap_servers: str, topic: str) -> None:
        super().__init__(queue)
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic

    def load(self) -> dict[str, TriggerState]:
        from common.queue.kafka_client import read_to_end

        self.states = {}
        for uid, value in read_to_end(self.bootstrap_servers, self.topic).items():
            if is_request_key(uid):
                continue  # a user's request, read by the scheduler's RequestInbox
            try:
                self.states[uid] = TriggerState.model_validate_json(value)
            except ValueError:
                continue  # not a trigger state of this version: the trigger starts again
        return dict(self.states)


def default_store(queue: Queue) -> TriggerStore:
    if isinstance(queue, SqliteQueue):
        return SqliteTriggerStore(queue)
    return MemoryTriggerStore(queue)
