"""Consumer groups of the SQLite queue, shared by every process that opens the database.

A member is a row of ``queue_members`` with a lease (``expires``, on the database's clock) that
its polls renew. The assignment is a pure function of the live members (in join order) and the
topics' partition counts: partition ``p`` of a topic goes to the ``p % n``-th of its ``n``
subscribers, so every member computes the same one without talking to the others.

Ownership is handed over as in Kafka's eager rebalance: ``queue_owners`` says who holds each
partition, and a member takes a partition of its target only once nobody live holds it; the
previous owner releases it on its next poll, after its ``on_revoked`` (where it may still
commit). A commit of a partition another member holds is refused: a member that lost its
partitions (a zombie) cannot move the group's offsets. A member is dead when its lease expired,
or at once when it belongs to a process of this host that is gone (kill -9 leaves its row).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import TopicPartition

GROUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
CREATE TABLE IF NOT EXISTS queue_subscriptions (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    durable INTEGER NOT NULL,
    PRIMARY KEY (grp, topic)
);
CREATE TABLE IF NOT EXISTS queue_members (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id TEXT NOT NULL UNIQUE,
    grp TEXT NOT NULL,
    instance_id TEXT,
    topics TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_members_grp ON queue_members (grp);
CREATE TABLE IF NOT EXISTS queue_owners (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (grp, topic, partition)
);
"""

# seconds since the epoch, on the database's clock
NOW = "((julianday('now') - 2440587.5) * 86400.0)"

HOST = socket.gethostname()
# members of live subscriptions of this process: a row with this pid that is not here is left
# over by an earlier process that had the same pid (a container's pid 1)
LOCAL_MEMBERS: set[str] = set()

Run = Callable[[str, Sequence[object]], list[Any]]


GROUP_PREFIX = "\x00group:"


def group_key(group: str) -> str:
    """The wake-up name of a group's membership changes (topics are the others)."""
    return GROUP_PREFIX + group


def conn_runner(conn: sqlite3.Connection) -> Run:
    return lambda sql, params: conn.execute(sql, tuple(params)).fetchall()


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    instance_id: str | None
    topics: tuple[str, ...]
    host: str
    pid: int
    expired: bool

    @property
    def dead(self) -> bool:
        return self.expired or (self.host == HOST and _process_gone(self.pid, self.member_id))


def _process_gone(pid: int, member_id: str) -> bool:
    if pid == os.getpid():
        return member_id not in LOCAL_MEMBERS
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # a killed child not yet reaped by its parent is a zombie: gone all the same
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def read_members(run: Run, group: str) -> list[Member]:
    rows = run(
        f"SELECT member_id, instance_id, topics, host, pid, expires < {NOW} "
        "FROM queue_members WHERE grp = ? ORDER BY seq",
        (group,),
    )
    return [Member(r[0], r[1], tuple(json.loads(r[2])), r[3], int(r[4]), bool(r[5])) for r in rows]


def read_owners(run: Run, group: str) -> dict[TopicPartition, str]:
    rows = run("SELECT topic, partition, member_id FROM queue_owners WHERE grp = ?", (group,))
    return {TopicPartition(r[0], int(r[1])): r[2] for r in rows}


def assign(
    members: Sequence[Member], partitions: Callable[[str], int]
) -> dict[str, set[TopicPartition]]:
    """Target assignment of the live ``members`` (in join order): round robin per topic."""
    target: dict[str, set[TopicPartition]] = {m.member_id: set() for m in members}
    topics = sorted({t for m in members for t in m.topics})
    for topic in topics:
        subscribers = [m.member_id for m in members if topic in m.topics]
        for partition in range(partitions(topic)):
            target[subscribers[partition % len(subscribers)]].add(TopicPartition(topic, partition))
    return target


def join(
    conn: sqlite3.Connection,
    group: str,
    member_id: str,
    topics: Sequence[str],
    instance_id: str | None,
    lease: float,
    durable: bool,
) -> None:
    """Add a member (static membership: it replaces the member of the same ``instance_id``)."""
    if instance_id is not None:
        old = conn.execute(
            "SELECT member_id FROM queue_members WHERE grp = ? AND instance_id = ?",
            (group, instance_id),
        ).fetchall()
        remove(conn, group, [r[0] for r in old])
    conn.execute(
        "INSERT INTO queue_members (member_id, grp, instance_id, topics, host, pid, expires) "
        f"VALUES (?, ?, ?, ?, ?, ?, {NOW} + ?)",
        (member_id, group, instance_id, json.dumps(list(topics)), HOST, os.getpid(), lease),
    )
    conn.executemany(
        "INSERT INTO queue_subscriptions (grp, topic, durable) VALUES (?, ?, ?) "
        "ON CONFLICT (grp, topic) DO UPDATE SET durable = MAX(durable, excluded.durable)",
        [(group, topic, int(durable)) for topic in topics],
    )


def remove(conn: sqlite3.Connection, group: str, member_ids: Iterable[str]) -> None:
    """Drop members and free what they held."""
    ids = [(group, m) for m in member_ids]
    conn.executemany("DELETE FROM queue_owners WHERE grp = ? AND member_id = ?", ids)
    conn.executemany("DELETE FROM queue_members WHERE grp = ? AND member_id = ?", ids)


def renew(conn: sqlite3.Connection, member_id: str, lease: float) -> None:
    conn.execute(
        f"UPDATE queue_members SET expires = {NOW} + ? WHERE member_id = ?", (lease, member_id)
    )


def release(
    conn: sqlite3.Connection, group: str, member_id: str, parts: Iterable[TopicPartition]
) -> None:
    conn.executemany(
        "DELETE FROM queue_owners WHERE grp = ? AND topic = ? AND partition = ? AND member_id = ?",
        [(group, tp.topic, tp.partition, member_id) for tp in parts],
    )


def take(
    conn: sqlite3.Connection, group: str, member_id: str, parts: Iterable[TopicPartition]
) -> None:
    conn.executemany(
        "INSERT INTO queue_owners (grp, topic, partition, member_id) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (grp, topic, partition) DO UPDATE SET member_id = excluded.member_id",
        [(group, tp.topic, tp.partition, member_id) for tp in parts],
    )


def committed(run: Run, group: str, tp: TopicPartition) -> int | None:
    rows = run(
        "SELECT offset FROM queue_offsets WHERE grp = ? AND topic = ? AND partition = ?",
        (group, tp.topic, tp.partition),
    )
    return int(rows[0][0]) if rows else None


def commit_offsets(
    conn: sqlite3.Connection, group: str, member_id: str, last: dict[TopicPartition, int]
) -> list[TopicPartition]:
    """Store the offsets of the partitions this member may commit; returns those it may not
    (another member holds them)."""
    others = {
        TopicPartition(r[0], int(r[1]))
        for r in conn.execute(
            "SELECT topic, partition FROM queue_owners WHERE grp = ? AND member_id != ?",
            (group, member_id),
        )
    }
    # no owner at all: this member was dropped (lease) and nobody took the partition since, so
    # nobody else processed these records; committing them is still right
    refused = [tp for tp in last if tp in others]
    if not refused:
        store_offsets(conn, group, last)
    return refused


def store_offsets(conn: sqlite3.Connection, group: str, last: dict[TopicPartition, int]) -> None:
    """Store offsets without the ownership check (the caller knows nothing changed since)."""
    conn.executemany(
        "INSERT INTO queue_offsets (grp, topic, partition, offset) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (grp, topic, partition) DO UPDATE SET offset = MAX(offset, excluded.offset)",
        [(group, tp.topic, tp.partition, offset) for tp, offset in last.items()],
    )
