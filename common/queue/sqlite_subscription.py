"""One member of a consumer group of the SQLite queue (the rules are in ``sqlite_groups``).

A poll first checks the group when it is due (every ``min(1 s, lease / 4)``, at once after a
membership change in this process, and while a partition of its target is still held by the
previous owner): it renews its lease, drops dead members, releases what it must give up (after
``on_revoked``) and takes what is free (then ``on_assigned``). Then it reads the records after
its position in each partition it holds and is not paused, in offset order, with one range scan
of the ``(topic, offset)`` index.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.crash_points import BEFORE_COMMIT, crash_point
from common.errors import QueueError
from common.ids import new_id

from . import sqlite_groups as groups
from .base import AssignmentCallback, Outgoing, Record, TopicPartition

if TYPE_CHECKING:
    from .sqlite import SqliteQueue

log = logging.getLogger("lanner.queue")


@dataclass
class _Plan:
    """The group as read at one moment, from this member's point of view."""

    present: bool
    dead: list[str]
    target: set[TopicPartition]
    owners: dict[TopicPartition, str]
    live: set[str]

    def free_for(self, member_id: str, tp: TopicPartition) -> bool:
        owner = self.owners.get(tp)
        return owner is None or owner == member_id or owner not in self.live


class SqliteSubscription:
    def __init__(
        self,
        queue: SqliteQueue,
        topics: list[str],
        group: str,
        *,
        from_latest: bool = False,
        on_assigned: AssignmentCallback | None = None,
        on_revoked: AssignmentCallback | None = None,
        instance_id: str | None = None,
    ) -> None:
        if not topics:
            raise ValueError("subscribe needs at least one topic")
        self.queue = queue
        self.db = queue.db
        self.topics = topics
        self.group = group
        self.member_id = new_id()
        self.instance_id = instance_id
        self.from_latest = from_latest
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._lease = queue.session_timeout
        self._check_every = min(1.0, self._lease / 4)
        self._positions: dict[TopicPartition, int] = {}  # held partitions: last offset returned
        self._paused: set[TopicPartition] = set()
        # what _fetch reads (held, not paused), worked out again only when that changes: a
        # fetch runs for every poll, an assignment or pause changes rarely
        self._fetchable: tuple[list[TopicPartition], list[str], bool] | None = None
        # the usual case, worked out with _fetchable: this member holds every partition of its
        # topics, none paused, all at the same position. That position is kept here alone (the
        # values in _positions are stale until _materialize), so a fetch is one query and one
        # assignment, whatever the number of partitions.
        self._uniform: int | None = None
        # (the _fetchable it read, when it started): the last fetch read to the end
        self._drained: tuple[object, float] | None = None
        self._assigned_due: list[TopicPartition] = []  # on_assigned, at the next poll
        self._waiting = False  # a partition of the target still has its previous owner
        self._next_check = 0.0
        self._renew_at = 0.0
        self._group_version = -1
        # (foreign data version, membership changes) when a commit's ownership query passed
        self._verified: tuple[int, int] | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._changed = threading.Event()
        self._names = [*topics, groups.group_key(group)]
        self._sql: dict[tuple[int, int], str] = {}
        groups.LOCAL_MEMBERS.add(self.member_id)
        queue.register(self._names, self._changed)
        with self.db.transaction() as conn:
            for topic in topics:
                queue.ensure_topic(conn, topic)
            self._join(conn)
        # take what is free now: a live view counts "latest" from its subscription, not from
        # its first poll
        with self._lock:
            self._rebalance()

    # ------------------------------------------------------------------ group
    def _join(self, conn: sqlite3.Connection) -> None:
        groups.join(
            conn,
            self.group,
            self.member_id,
            self.topics,
            self.instance_id,
            self._lease,
            durable=not self.from_latest,
        )
        self.queue.touch([groups.group_key(self.group)])
        self._renew_at = time.monotonic() + self._lease / 3

    def _me(self) -> groups.Member:
        return groups.Member(
            self.member_id, self.instance_id, tuple(self.topics), groups.HOST, 0, False
        )

    def _plan(self, run: groups.Run) -> _Plan:
        members = groups.read_members(run, self.group)
        present = any(m.member_id == self.member_id for m in members)
        live = [m for m in members if m.member_id == self.member_id or not m.dead]
        if not present:
            live.append(self._me())
        dead = [m.member_id for m in members if m.member_id != self.member_id and m.dead]
        target = groups.assign(live, lambda t: self.queue.known_partitions(run, t))
        return _Plan(
            present=present,
            dead=dead,
            target=target[self.member_id],
            owners=groups.read_owners(run, self.group),
            live={m.member_id for m in live},
        )

    def _due(self) -> bool:
        return (
            time.monotonic() >= self._next_check
            or self._waiting
            or self.queue.group_version(self.group) != self._group_version
        )

    def _rebalance(self) -> None:
        """Renew the lease, follow the group's assignment (callers hold ``self._lock``)."""
        now = time.monotonic()
        self._group_version = self.queue.group_version(self.group)
        self._next_check = now + self._check_every
        plan = self._plan(self.db.query)
        held = set(self._positions)
        revoke = [
            tp
            for tp in held
            if tp not in plan.target or plan.owners.get(tp, self.member_id) != self.member_id
        ]
        gain = [tp for tp in plan.target - held if plan.free_for(self.member_id, tp)]
        retake = [tp for tp in held - set(revoke) if tp not in plan.owners]
        stale = [
            tp
            for tp, owner in plan.owners.items()
            if owner == self.member_id and tp not in held and tp not in plan.target
        ]
        if revoke:
            self._revoke(sorted(revoke, key=_order))
        changes = plan.dead or revoke or gain or retake or stale
        if plan.present and not changes and now < self._renew_at:
            self._waiting = bool(plan.target - held)
            return
        gained: list[TopicPartition] = []
        with self.db.transaction() as conn:
            run = groups.conn_runner(conn)
            plan = self._plan(run)  # again, under the write lock: other processes moved on
            if plan.dead:
                groups.remove(conn, self.group, plan.dead)
                self.queue.touch([groups.group_key(self.group)])
            if not plan.present:
                self._join(conn)
            else:
                groups.renew(conn, self.member_id, self._lease)
                self._renew_at = now + self._lease / 3
            # with what an earlier check revoked but failed to release
            mine = [tp for tp, owner in plan.owners.items() if owner == self.member_id]
            revoke += [tp for tp in mine if tp not in self._positions and tp not in plan.target]
            groups.release(conn, self.group, self.member_id, revoke)
            if revoke:
                self.queue.touch([groups.group_key(self.group)])
            lost = [tp for tp in self._positions if not plan.free_for(self.member_id, tp)]
            held = set(self._positions) - set(lost)
            gained = [tp for tp in plan.target - held if plan.free_for(self.member_id, tp)]
            groups.take(conn, self.group, self.member_id, [*gained, *(held & plan.target)])
            latest = None
            for tp in gained:
                position = groups.committed(run, self.group, tp)
                if position is None:
                    if self.from_latest:
                        if latest is None:
                            row = conn.execute("SELECT MAX(offset) FROM queue_records").fetchone()
                            latest = int(row[0] or 0)
                        position = latest
                    else:
                        position = 0
                self._materialize()
                self._positions[tp] = position
                self._fetchable = None
            self._waiting = bool(plan.target - held - set(gained))
        if lost:  # taken by another member while this one was away: too late to commit
            self._revoke(sorted(lost, key=_order))
        if gained:
            self._assigned_due.extend(sorted(gained, key=_order))

    def _revoke(self, parts: list[TopicPartition]) -> None:
        if self._on_revoked is not None:
            self._on_revoked(parts)
        self._materialize()
        for tp in parts:
            self._positions.pop(tp, None)
            self._paused.discard(tp)
            self._fetchable = None

    # ------------------------------------------------------------------ records
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._closed:
                    return []
                # cleared before the reads: a commit after them sets it again
                changed = self._changed.is_set()
                if changed:
                    self._changed.clear()
                if self._due():
                    try:
                        self._rebalance()
                    except sqlite3.Error as exc:  # e.g. locked by another process: next check
                        log.warning("group %s: cannot check the group: %s", self.group, exc)
                if self._assigned_due:
                    assigned, self._assigned_due = self._assigned_due, []
                    if self._on_assigned is not None:
                        self._on_assigned(assigned)
                records = (
                    self._fetch(max_records) if max_records > 0 and not self._quiet(changed) else []
                )
                next_check = self._next_check
            if records:
                return records
            now = time.monotonic()
            if now >= deadline:
                return []
            # until a commit of this process touches our topics or group, another process
            # commits (the queue's watcher sees it within ``cross_process_poll``), or the time
            self.queue.wait(self._changed, min(deadline, next_check) - now)

    def _materialize(self) -> None:
        """Write the uniform position back into ``_positions`` (before they change)."""
        if self._uniform is not None:
            for tp in self._positions:
                self._positions[tp] = self._uniform
            self._uniform = None
            self._fetchable = None

    def _quiet(self, changed: bool) -> bool:
        """Nothing new can be there to read: the last read found everything up to the end,
        less than ``cross_process_poll`` ago, and since then no commit of this process touched
        these topics or this group and the watcher saw no other connection's commit (either
        sets ``_changed``), and the partitions to read are the same. Records of another process
        that no watcher saw are read at the next poll after that interval, the bound they have
        anyway. A poll without a wait (the executor's flows and side topics before every batch)
        is then no query at all."""
        last = self._drained
        return (
            not changed
            and last is not None
            and last[0] is self._fetchable
            and time.monotonic() - last[1] < self.queue.cross_process_poll
        )

    def _fetch(self, max_records: int) -> list[Record]:
        if self._fetchable is None:
            self._materialize()
            held = sorted((tp for tp in self._positions if tp not in self._paused), key=_order)
            names = sorted({tp.topic for tp in held})
            count = sum(self.queue.known_partitions(self.db.query, t) for t in names)
            self._fetchable = (held, names, len(held) == count)
            if held and len(held) == count and len({self._positions[tp] for tp in held}) == 1:
                self._uniform = self._positions[held[0]]
        plan = self._fetchable
        parts, topics, whole = plan
        if not parts:
            return []
        started = time.monotonic()
        self._drained = None
        if self._uniform is not None:
            # the usual case (the only member, nothing paused): no partition filter at all
            rows = self.db.query(self._query(len(topics), 0), (*topics, self._uniform, max_records))
            if len(rows) < max_records:
                self._drained = (plan, started)
            if not rows:
                return []
            self._uniform = rows[-1][0]  # every partition moves to the last record returned
        else:
            positions = self._positions
            params: list[object] = [*topics, min(positions[tp] for tp in parts)]
            for tp in parts:
                params += (tp.topic, tp.partition, positions[tp])
            params.append(max_records)
            rows = self.db.query(self._query(len(topics), len(parts)), params)
            if len(rows) < max_records:
                self._drained = (plan, started)
            if not rows:
                return []
            # these are the first records after each position in offset order: every record
            # of these partitions up to the last one is returned, so they all move to it
            last = rows[-1][0]
            for tp in parts:
                if positions[tp] < last:
                    positions[tp] = last
        return [Record(topic=r[1], key=r[3], value=r[4], partition=r[2], offset=r[0]) for r in rows]

    def _query(self, topics: int, parts: int) -> str:
        """One range scan of the (topic, offset) index from the lowest position, each held
        partition filtered after its own (``+offset``: a filter, never another index scan).

        The scan of several topics is sorted by offset (a temporary B-tree): it picks the
        offsets alone, and only the ``LIMIT`` rows it keeps are read whole. Sorting whole rows
        read every value of a backlog at each poll, twice the CPU of a poll 3000 records behind.
        One topic's scan is in offset order already and stops at the limit: rows at once.
        """
        sql = self._sql.get((topics, parts))
        if sql is None:
            held = " OR ".join(["(topic = ? AND partition = ? AND +offset > ?)"] * parts)
            where = (
                f"WHERE topic IN ({','.join('?' * topics)}) AND offset > ? "
                f"{f'AND ({held}) ' if parts else ''}ORDER BY offset LIMIT ?"
            )
            columns = "SELECT offset, topic, partition, key, value FROM queue_records"
            sql = self._sql[(topics, parts)] = (
                f"{columns} {where}"
                if topics == 1
                else f"{columns} WHERE offset IN (SELECT offset FROM queue_records {where}) "
                "ORDER BY offset"
            )
        return sql

    def commit(self, records: Sequence[Record]) -> None:
        if not records:
            return
        # plain tuples while counting (a TopicPartition per record cost more than the rest of
        # the loop); equal to and hashed as the TopicPartitions they become
        highest: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.topic, record.partition)
            if highest.get(key, -1) < record.offset:
                highest[key] = record.offset
        last = {TopicPartition(*key): offset for key, offset in highest.items()}
        with self.db.transaction() as conn:
            # Under the write lock, the group's owners can only have changed since the last
            # check that passed if another connection committed (its data version moved) or a
            # member on this connection joined, left or released (any group, any queue on this
            # database); and this member only ever takes partitions nobody live holds. With
            # neither, the ownership query would answer as it did: skip it for the partitions
            # still held.
            seen = (self.db.foreign_version(), self.db.membership_changes)
            positions = self._positions
            if seen == self._verified and all(tp in positions for tp in last):
                groups.store_offsets(conn, self.group, last)
                return
            refused = groups.commit_offsets(conn, self.group, self.member_id, last)
            if refused:  # raised inside: an enclosing transaction rolls back what it did
                raise QueueError(
                    f"cannot commit {', '.join(f'{t.topic}[{t.partition}]' for t in refused)} "
                    f"for group '{self.group}': another member holds them now (rebalanced)"
                )
            self._verified = seen

    def produce_and_commit(self, produce: Sequence[Outgoing], records: Sequence[Record]) -> None:
        with self.db.transaction():
            self.queue.emit_many(produce)
            self.commit(records)
            crash_point(BEFORE_COMMIT)

    # ------------------------------------------------------------------ assignment
    def assignment(self) -> list[TopicPartition]:
        with self._lock:
            return sorted(self._positions, key=_order)

    def pause(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        with self._lock:
            paused = self._paused | set(self._positions if partitions is None else partitions)
            if paused != self._paused:  # a full worker pauses before every poll: often no change
                self._materialize()
                self._paused = paused
                self._fetchable = None

    def resume(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        with self._lock:
            paused = set() if partitions is None else self._paused - set(partitions)
            if paused == self._paused:  # a worker with room resumes before every poll
                return
            self._materialize()
            self._paused = paused
            self._fetchable = None
        self._changed.set()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            held = sorted(self._positions, key=_order)
            try:
                if held and self._on_revoked is not None:
                    self._on_revoked(held)
                with self.db.transaction() as conn:
                    groups.remove(conn, self.group, [self.member_id])
                    self.queue.touch([groups.group_key(self.group)])
            except (sqlite3.Error, QueueError):  # the database is gone: the row dies with us
                log.debug("member %s of %s left without its row", self.member_id, self.group)
            self._positions.clear()
            self._fetchable = None
            self._uniform = None
            groups.LOCAL_MEMBERS.discard(self.member_id)
            self.queue.unregister(self._names, self._changed)
        self._changed.set()


def _order(tp: TopicPartition) -> tuple[str, int]:
    return (tp.topic, tp.partition)
