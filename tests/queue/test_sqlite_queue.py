"""What only the SQLite queue has to show (the shared behaviour is ``tests/contracts/queue.py``):
leases, members of other processes, fencing of a member that lost its partitions, transactions
joined by the embedded executor, the upgrade of a single-partition database, and what the purge
may delete."""

from __future__ import annotations

import sqlite3
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import QueueError
from common.queue.base import EXECUTIONS, EXECUTOR, Record, TopicPartition
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.queue.sqlite_subscription import SqliteSubscription
from tests.infra.processes import ManagedProcess, tail
from tests.infra.waiting import wait_until

DEADLINE = 30.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "lanner.db"


@pytest.fixture
def queue(db_path: Path) -> Iterator[SqliteQueue]:
    q = SqliteQueue(SqliteDatabase(str(db_path)), session_timeout=1.0)
    yield q
    q.close()


def _values(records: list[Record]) -> list[str]:
    return [r.value.decode() for r in records if r.value is not None]


def _poll_until(sub: SqliteSubscription, received: list[Record], count: int) -> list[Record]:
    def step() -> bool:
        received.extend(sub.poll(100, timeout=0.1))
        return len(received) >= count

    wait_until(step, DEADLINE, f"{count} records", interval=0)
    return received


def test_a_member_that_stops_polling_loses_its_partitions_after_its_lease(
    queue: SqliteQueue,
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    queue.emit_many([(EXECUTOR, f"k{n}", f"v{n}".encode()) for n in range(20)])
    stalled = queue.subscribe([EXECUTOR], group)
    taken = _poll_until(stalled, [], 20)  # polled, never committed, then it stops polling
    survivor = queue.subscribe([EXECUTOR], group)
    got: list[Record] = []

    def survivor_has_everything() -> bool:
        got.extend(survivor.poll(100, timeout=0.1))
        return len(survivor.assignment()) == queue.partitions(EXECUTOR) and len(got) == 20

    wait_until(survivor_has_everything, DEADLINE, "the lease to end and the survivor to take over")
    assert sorted(_values(got)) == sorted(_values(taken))
    # the stalled member is fenced: its late commit cannot move the group's offsets
    with pytest.raises(QueueError, match="another member holds them"):
        stalled.commit(taken)
    with pytest.raises(QueueError):
        stalled.produce_and_commit([(EXECUTIONS, "k0", b"zombie")], taken)
    reader = queue.subscribe([EXECUTIONS], f"r-{uuid.uuid4().hex[:8]}")
    assert reader.poll(100, timeout=0.2) == []  # nothing of the refused unit was written
    stalled.close()
    survivor.close()


MEMBER = textwrap.dedent(
    """
    import sys
    from common.queue.base import EXECUTOR
    from common.queue.sqlite import SqliteDatabase, SqliteQueue

    queue = SqliteQueue(SqliteDatabase(sys.argv[1]), session_timeout=600)
    sub = queue.subscribe([EXECUTOR], sys.argv[2])
    while True:
        for record in sub.poll(100, timeout=0.2):
            print("record", record.value.decode(), flush=True)
    """
)


def test_a_killed_member_of_another_process_is_dropped_without_waiting_for_its_lease(
    db_path: Path, queue: SqliteQueue, tmp_path: Path
) -> None:
    """Its lease is 10 minutes: the survivor takes over because the process is gone."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "member.log"
    member = ManagedProcess(
        "sqlite queue member",
        [sys.executable, "-c", MEMBER, str(db_path), group],
        log_path,
        cwd=Path(__file__).resolve().parents[2],
    ).start()
    try:
        queue.emit_many([(EXECUTOR, f"k{n}", f"v{n}".encode()) for n in range(10)])
        member.wait_for(lambda: log_path.read_text().count("record v") == 10, DEADLINE, "records")
        survivor = queue.subscribe([EXECUTOR], group)
        member.kill()
        got: list[Record] = []

        def took_over() -> bool:
            got.extend(survivor.poll(100, timeout=0.1))
            return len(got) == 10

        wait_until(
            took_over, DEADLINE, "the survivor to take over", diagnose=lambda: tail(log_path)
        )
        assert sorted(_values(got)) == sorted(f"v{n}" for n in range(10))
        assert len(survivor.assignment()) == queue.partitions(EXECUTOR)
        survivor.close()
    finally:
        member.kill()


def test_records_of_another_process_wake_a_waiting_poll(db_path: Path, queue: SqliteQueue) -> None:
    sub = queue.subscribe([EXECUTOR], f"g-{uuid.uuid4().hex[:8]}")
    other = SqliteQueue(SqliteDatabase(str(db_path)))  # another connection, as another process
    other.emit(EXECUTOR, "k", b"from elsewhere")
    records = _poll_until(sub, [], 1)
    assert _values(records) == ["from elsewhere"]
    sub.close()


def test_a_commit_of_another_connection_wakes_the_waiting_subscriptions(
    db_path: Path, queue: SqliteQueue
) -> None:
    """One watcher per queue reads the data version of its writer connection, which only
    another connection's commit changes, and wakes every waiting subscription."""
    quiet = queue.subscribe([EXECUTIONS], f"g-{uuid.uuid4().hex[:8]}")
    woken = threading.Event()
    queue.register(["a name no commit of this process touches"], woken)
    waiting = threading.Thread(target=lambda: quiet.poll(100, timeout=DEADLINE))
    waiting.start()  # a subscription waits (nothing comes on its topic): the watcher watches
    other = SqliteQueue(SqliteDatabase(str(db_path)))  # another connection, as another process
    other.emit(EXECUTOR, "k", b"from elsewhere")
    wait_until(woken.is_set, DEADLINE, "the watcher to see the other connection's commit")
    quiet.close()  # ends the waiting poll
    waiting.join(DEADLINE)
    other.close()


def test_a_poll_without_wait_reads_a_record_of_this_process_at_once(queue: SqliteQueue) -> None:
    """A poll that found nothing skips its query while nothing could have come; an emit of this
    process (it sets the subscription's event on commit) is read by the very next poll."""
    sub = queue.subscribe([EXECUTOR], f"g-{uuid.uuid4().hex[:8]}")
    assert sub.poll(100, timeout=0) == []
    assert sub.poll(100, timeout=0) == []  # nothing came: no query needed
    queue.emit(EXECUTOR, "k", b"here")
    assert _values(sub.poll(100, timeout=0)) == ["here"]
    queue.emit(EXECUTOR, "k", b"again")
    assert _values(sub.poll(100, timeout=0)) == ["again"]
    sub.close()


def test_polls_without_wait_read_records_of_another_process(
    db_path: Path, queue: SqliteQueue
) -> None:
    """Nobody waits, so no watcher looks: the polls that skip their query still read again
    after ``cross_process_poll``."""
    sub = queue.subscribe([EXECUTOR], f"g-{uuid.uuid4().hex[:8]}")
    assert sub.poll(100, timeout=0) == []
    other = SqliteQueue(SqliteDatabase(str(db_path)))  # another connection, as another process
    other.emit(EXECUTOR, "k", b"from elsewhere")
    received: list[Record] = []

    def read() -> bool:
        received.extend(sub.poll(100, timeout=0))
        return bool(received)

    wait_until(read, DEADLINE, "the other connection's record", interval=0.01)
    assert _values(received) == ["from elsewhere"]
    sub.close()
    other.close()


def test_a_poll_of_several_topics_behind_reads_in_offset_order(queue: SqliteQueue) -> None:
    """Several topics, far more records than a poll returns, with and without a partition
    filter (one partition paused): each poll returns the next records in offset order."""
    for paused in (False, True):
        sub = queue.subscribe([EXECUTOR, EXECUTIONS], f"g-{uuid.uuid4().hex[:8]}")
        queue.emit_many(
            [(EXECUTOR if n % 3 else EXECUTIONS, f"k{n}", f"v{n}".encode()) for n in range(300)]
        )
        if paused:
            sub.pause([TopicPartition(EXECUTOR, 0)])
        received: list[Record] = []
        while batch := sub.poll(40, timeout=0.2):
            assert len(batch) <= 40
            received.extend(batch)
        written = queue.db.query(
            "SELECT offset FROM queue_records WHERE topic IN (?, ?) "
            "AND NOT (topic = ? AND partition = ?) ORDER BY offset",
            (EXECUTOR, EXECUTIONS, EXECUTOR, 0 if paused else -1),
        )
        assert [r.offset for r in received] == [r[0] for r in written]
        sub.close()


def _take_over(survivor: SqliteSubscription, partitions: int) -> None:
    def holds_everything() -> bool:
        survivor.poll(100, timeout=0.1)
        return len(survivor.assignment()) == partitions

    wait_until(holds_everything, DEADLINE, "the survivor to take every partition")


def test_a_member_fenced_by_another_connection_cannot_commit_after_its_earlier_commits(
    db_path: Path, queue: SqliteQueue
) -> None:
    """A commit skips the ownership query only while no other connection committed and no
    member of this process joined or left since it last ran: a member whose lease ended and
    whose partitions another process took is refused, even though its earlier commits passed
    and it never polled since."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    queue.emit_many([(EXECUTOR, f"k{n}", f"v{n}".encode()) for n in range(20)])
    stalled = queue.subscribe([EXECUTOR], group)
    taken = _poll_until(stalled, [], 20)
    stalled.commit(taken[:1])
    stalled.commit(taken[1:2])  # the second one may take the fast path
    other = SqliteQueue(SqliteDatabase(str(db_path)), session_timeout=1.0)
    survivor = other.subscribe([EXECUTOR], group)
    _take_over(survivor, queue.partitions(EXECUTOR))
    with pytest.raises(QueueError, match="another member holds them"):
        stalled.commit(taken[2:])
    stalled.close()
    survivor.close()
    other.close()


def test_a_member_replaced_by_its_instance_id_in_another_connection_cannot_commit(
    db_path: Path, queue: SqliteQueue
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    queue.emit_many([(EXECUTOR, f"k{n}", f"v{n}".encode()) for n in range(20)])
    old = queue.subscribe([EXECUTOR], group, instance_id="worker-1")
    taken = _poll_until(old, [], 20)
    old.commit(taken[:1])
    old.commit(taken[1:2])
    other = SqliteQueue(SqliteDatabase(str(db_path)), session_timeout=1.0)
    new = other.subscribe([EXECUTOR], group, instance_id="worker-1")
    assert len(new.assignment()) == queue.partitions(EXECUTOR)
    with pytest.raises(QueueError, match="another member holds them"):
        old.commit(taken[2:])
    old.close()
    new.close()
    other.close()


def test_a_member_replaced_by_its_instance_id_in_this_process_cannot_commit(
    queue: SqliteQueue,
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    queue.emit_many([(EXECUTOR, f"k{n}", f"v{n}".encode()) for n in range(20)])
    old = queue.subscribe([EXECUTOR], group, instance_id="worker-1")
    taken = _poll_until(old, [], 20)
    old.commit(taken[:1])
    old.commit(taken[1:2])
    new = queue.subscribe([EXECUTOR], group, instance_id="worker-1")
    assert len(new.assignment()) == queue.partitions(EXECUTOR)
    with pytest.raises(QueueError, match="another member holds them"):
        old.commit(taken[2:])
    old.close()
    new.close()


def test_a_member_replaced_through_another_queue_on_the_same_database_cannot_commit(
    queue: SqliteQueue,
) -> None:
    """Two queue objects on one database share its connection (no data version moves): the
    membership changes either makes are counted per database, not per queue."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    queue.emit_many([(EXECUTOR, f"k{n}", f"v{n}".encode()) for n in range(20)])
    old = queue.subscribe([EXECUTOR], group, instance_id="worker-1")
    taken = _poll_until(old, [], 20)
    old.commit(taken[:1])
    old.commit(taken[1:2])
    twin = SqliteQueue(queue.db, session_timeout=1.0)
    new = twin.subscribe([EXECUTOR], group, instance_id="worker-1")
    assert len(new.assignment()) == queue.partitions(EXECUTOR)
    with pytest.raises(QueueError, match="another member holds them"):
        old.commit(taken[2:])
    old.close()
    new.close()


def test_produce_and_commit_joins_an_enclosing_transaction(queue: SqliteQueue) -> None:
    """The embedded executor stores its state, emits and commits in one transaction."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    queue.emit(EXECUTOR, "k", b"input")
    sub = queue.subscribe([EXECUTOR], group)
    records = _poll_until(sub, [], 1)
    with pytest.raises(RuntimeError), queue.db.transaction():
        sub.produce_and_commit([(EXECUTIONS, "k", b"output")], records)
        raise RuntimeError("the batch fails after its emits")
    sub.close()
    again = queue.subscribe([EXECUTOR], group)
    assert _values(_poll_until(again, [], 1)) == ["input"]  # the offset was rolled back too
    reader = queue.subscribe([EXECUTIONS], f"r-{uuid.uuid4().hex[:8]}")
    assert reader.poll(100, timeout=0.2) == []
    with queue.db.transaction():
        again.produce_and_commit([(EXECUTIONS, "k", b"output")], records)
    assert _values(_poll_until(reader, [], 1)) == ["output"]
    again.close()
    reader.close()


def test_a_single_partition_database_is_upgraded_in_place(db_path: Path) -> None:
    """A database of the queue before partitions: its groups resume where they were."""
    conn = sqlite3.connect(db_path)
    conn.executescript(
        """
        CREATE TABLE queue_records (offset INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
            key TEXT, value BLOB);
        CREATE INDEX queue_records_topic ON queue_records (topic, offset);
        CREATE TABLE queue_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL,
            offset INTEGER NOT NULL, PRIMARY KEY (grp, topic));
        INSERT INTO queue_records (topic, key, value) VALUES
            ('executor', 'a', CAST('done-1' AS BLOB)), ('executor', 'b', CAST('done-2' AS BLOB)),
            ('executor', 'c', CAST('todo-3' AS BLOB));
        INSERT INTO queue_offsets VALUES ('executor', 'executor', 2);
        INSERT INTO queue_offsets VALUES ('worker-kills.gone', 'executor', 0);
        """
    )
    conn.commit()
    conn.close()
    queue = SqliteQueue(SqliteDatabase(str(db_path)))
    queue.emit(EXECUTOR, "d", b"todo-4")
    sub = queue.subscribe([EXECUTOR], "executor")
    records = _poll_until(sub, [], 2)
    assert sorted(_values(records)) == ["todo-3", "todo-4"]
    assert sub.poll(100, timeout=0.2) == []
    # the group of a process long gone (it will never subscribe again) holds nothing back
    sub.commit(records)
    assert queue.purge(retain=0) == 4
    sub.close()
    queue.close()


def test_purge_keeps_what_a_durable_group_has_not_committed_and_a_margin(
    queue: SqliteQueue,
) -> None:
    slow_group = f"slow-{uuid.uuid4().hex[:8]}"
    slow = queue.subscribe([EXECUTOR], slow_group)
    fast = queue.subscribe([EXECUTOR], f"fast-{uuid.uuid4().hex[:8]}")
    live = queue.subscribe([EXECUTOR], f"live-{uuid.uuid4().hex[:8]}", from_latest=True)
    queue.emit_many([(EXECUTOR, "one-key", f"v{n}".encode()) for n in range(100)])
    fast.commit(_poll_until(fast, [], 100))
    slow_records = _poll_until(slow, [], 100)
    slow.commit(slow_records[:40])
    _poll_until(live, [], 100)  # a live view never commits: it holds nothing back

    assert queue.purge(retain=5) == 40  # up to the slow group's offset
    assert queue.purge(retain=5) == 0
    slow.commit(slow_records)
    assert queue.purge(retain=5) == 55  # every group is done: only the margin stays
    remaining = queue.db.query("SELECT value FROM queue_records ORDER BY offset")
    assert [bytes(r[0]).decode() for r in remaining] == [f"v{n}" for n in range(95, 100)]
    for sub in (slow, fast, live):
        sub.close()


def test_purge_keeps_each_partition_from_its_own_bound(queue: SqliteQueue) -> None:
    """Records of every partition go up to the lowest bound in one pass over the topic, then
    each partition up to its own: a group behind in one partition holds back only that one."""
    behind = queue.subscribe([EXECUTOR], f"behind-{uuid.uuid4().hex[:8]}")
    queue.emit_many([(EXECUTOR, f"k{n}", f"v{n}".encode()) for n in range(200)])
    records = _poll_until(behind, [], 200)
    assert len({r.partition for r in records}) == queue.partitions(EXECUTOR)
    first = [r for r in records if r.partition == 0]
    kept = first[len(first) // 2 :]
    behind.commit([r for r in records if r not in kept])

    deleted = queue.purge(retain=0)

    remaining = queue.db.query("SELECT value FROM queue_records ORDER BY offset")
    assert [bytes(r[0]).decode() for r in remaining] == _values(kept)
    assert deleted == 200 - len(kept)
    behind.close()


def test_assignment_pause_and_resume_are_per_partition(queue: SqliteQueue) -> None:
    sub = queue.subscribe([EXECUTOR], f"g-{uuid.uuid4().hex[:8]}")
    everything = [TopicPartition(EXECUTOR, p) for p in range(queue.partitions(EXECUTOR))]
    assert sub.assignment() == everything
    sub.pause(everything[1:])
    queue.emit_many([(EXECUTOR, f"k{n}", b"x") for n in range(40)])
    got = sub.poll(100, timeout=0.2)
    assert got and {r.partition for r in got} == {0}
    sub.resume()
    rest = _poll_until(sub, [], 40 - len(got))
    assert {r.partition for r in rest} == {1, 2, 3}
    sub.close()
