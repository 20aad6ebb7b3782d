"""The queue contract (``common.queue.base``), written once and run against every backend.

A backend's test module subclasses ``QueueContract`` (or only ``TransactionContract``) and
provides a ``queue_settings`` fixture: the ``Settings`` values (a dict) of a fresh, empty queue
whose topics exist (Kafka: created as ``lanner kafka init`` does, with at least two partitions
each). Queues are built from them by ``common.backends.create_queue``, in the test process and
in member subprocesses (``tests/contracts/queue_member.py``), which the kill -9 tests need.

What every backend must show:
- per-key order: the records of one key arrive in the order they were emitted, on one partition;
- the members of a group share the partitions (each partition has one member; the assignment
  callbacks describe what each member holds) and together see every record exactly once;
- records a member had not committed when it was killed (kill -9 of its process) are delivered
  to the surviving member; committed ones are not delivered again;
- a ``produce_and_commit`` killed half-way (``LANNER_CRASH_AT=produce_and_commit:before-commit``,
  see ``common.crash_points``) leaves neither its records (to any reader) nor its offsets: the
  restarted instance (same ``instance_id``) gets the same records again;
- pause and resume per partition, and of every assigned partition;
- a record larger than ``queue_max_record_bytes`` (key + value bytes) raises
  ``MessageTooLargeError`` and is not written, in ``emit``, ``emit_many`` and
  ``produce_and_commit``; one of exactly that size is accepted.
"""

from __future__ import annotations

import json
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from common.backends import create_queue
from common.crash_points import BEFORE_COMMIT, CRASH_ENV
from common.errors import MessageTooLargeError
from common.queue.base import EXECUTIONS, EXECUTOR, Queue, Record, TopicPartition
from common.queue.offload import OffloadingQueue
from common.settings import Settings
from common.storage.local import LocalStorage
from tests.infra.processes import ManagedProcess, tail
from tests.infra.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]

# group changes on Kafka wait for a session timeout (a killed member) on a busy 2-core machine
DEADLINE = 120.0


def open_queue(settings: dict[str, Any]) -> Queue:
    return create_queue(Settings(**settings), client_id="queue-contract")


def values(records: Sequence[Record]) -> list[str | None]:
    return [None if r.value is None else r.value.decode() for r in records]


class Member:
    """An in-process group member that keeps what it polled and what its callbacks said."""

    def __init__(
        self,
        queue: Queue,
        topics: Sequence[str],
        group: str,
        *,
        instance_id: str | None = None,
        commit: bool = True,
        from_latest: bool = False,
    ) -> None:
        self.held: set[TopicPartition] = set()
        self.revoked: list[TopicPartition] = []
        self.received: list[Record] = []
        self.commit = commit
        self.subscription = queue.subscribe(
            topics,
            group,
            on_assigned=self._on_assigned,
            on_revoked=self._on_revoked,
            instance_id=instance_id,
            from_latest=from_latest,
        )

    def _on_assigned(self, partitions: list[TopicPartition]) -> None:
        assert not self.held & set(partitions), "assigned a partition it already holds"
        self.held |= set(partitions)

    def _on_revoked(self, partitions: list[TopicPartition]) -> None:
        assert set(partitions) <= self.held, "revoked a partition it did not hold"
        self.held -= set(partitions)
        self.revoked.extend(partitions)

    def poll(self, timeout: float = 0.2) -> list[Record]:
        records = self.subscription.poll(max_records=100, timeout=timeout)
        self.received.extend(records)
        if records and self.commit:
            self.subscription.commit(records)
        return records

    def values(self) -> list[str | None]:
        return values(self.received)

    def close(self) -> None:
        self.subscription.close()


def poll_until(
    members: Sequence[Member], condition: Callable[[], object], what: str, timeout: float = DEADLINE
) -> None:
    """Polls every member in turn (polling is what keeps a member in its group) until
    ``condition`` holds."""

    def step() -> object:
        for member in members:
            member.poll()
        return condition()

    wait_until(step, timeout, what, interval=0.01)


def all_partitions(queue: Queue, topic: str) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in range(queue.partitions(topic))}


class MemberProcess:
    """A group member in a subprocess (``tests.contracts.queue_member``); ``kill()`` is kill -9."""

    def __init__(self, process: ManagedProcess) -> None:
        self.process = process

    def events(self, kind: str) -> list[dict[str, Any]]:
        lines = self.process.log_path.read_text(errors="replace").splitlines()
        parsed = [json.loads(line) for line in lines if line.startswith('{"event"')]
        return [event for event in parsed if event["event"] == kind]

    def received(self) -> list[str | None]:
        return [event["value"] for event in self.events("record")]

    def committed(self) -> list[str | None]:
        return [value for event in self.events("committed") for value in event["values"]]

    def diagnose(self) -> str:
        return f"member log {self.process.log_path}:\n{tail(self.process.log_path, 30)}"

    def kill(self) -> None:
        self.process.kill()


SpawnMember = Callable[..., MemberProcess]


class TransactionContract:
    """``produce_and_commit`` is atomic even when the process dies half-way through it."""

    @pytest.fixture
    def spawn_member(self, queue_settings: dict[str, Any], tmp_path: Path) -> Iterator[SpawnMember]:
        started: list[ManagedProcess] = []

        def spawn(crash_at: str | None = None, **spec: Any) -> MemberProcess:
            spec["settings"] = queue_settings
            log_path = tmp_path / "members" / f"member-{len(started) + 1}.log"
            process = ManagedProcess(
                f"queue member {len(started) + 1}",
                [sys.executable, "-m", "tests.contracts.queue_member", json.dumps(spec)],
                log_path,
                env={CRASH_ENV: crash_at} if crash_at else None,
                cwd=ROOT,
            )
            started.append(process.start())
            return MemberProcess(process)

        yield spawn
        for process in started:
            process.kill()

    def test_a_transaction_killed_half_way_leaves_neither_its_records_nor_its_offsets(
        self, queue_settings: dict[str, Any], spawn_member: SpawnMember
    ) -> None:
        queue = open_queue(queue_settings)
        group = f"g-{uuid.uuid4().hex[:8]}"
        keys = [f"k{i}" for i in range(10)]
        inputs = [f"in-{k}" for k in keys]
        queue.emit_many([(EXECUTOR, k, f"in-{k}".encode()) for k in keys])

        member = spawn_member(
            crash_at=BEFORE_COMMIT,
            topics=[EXECUTOR],
            group=group,
            instance_id="m1",
            transform_to=EXECUTIONS,
            out_prefix="out1:",
        )
        wait_until(
            lambda: not member.process.running,
            DEADLINE,
            "the member to die inside produce_and_commit",
            diagnose=member.diagnose,
        )
        assert member.process.returncode == -signal.SIGKILL, member.diagnose()
        assert member.received(), member.diagnose()  # it did poll, then died committing
        assert member.committed() == [], member.diagnose()

        # the same instance restarts: nothing was acknowledged, so it gets every input again
        restarted = Member(queue, [EXECUTOR], group, instance_id="m1", commit=False)
        poll_until(
            [restarted],
            lambda: sorted(restarted.values()) == sorted(inputs),
            "the restarted member to get every input again",
        )
        assert sorted(restarted.values()) == sorted(inputs)  # exactly once each
        restarted.subscription.produce_and_commit(
            [(EXECUTIONS, r.key, b"out2:" + (r.value or b"")) for r in restarted.received],
            restarted.received,
        )

        # A reader sees the second run's records and none of the first's: a key's records share
        # a partition, so having read out2 of every key it has read past where out1 would be.
        reader = Member(queue, [EXECUTIONS], f"reader-{uuid.uuid4().hex[:8]}")
        poll_until(
            [reader],
            lambda: sum(v.startswith("out2:") for v in reader.values() if v) == len(keys),
            "the reader to see the committed transaction's records",
        )
        assert sorted(reader.values()) == sorted(f"out2:in-{k}" for k in keys)

        # and the second run's offsets were committed with its records
        restarted.close()
        queue.emit_many([(EXECUTOR, k, f"after-{k}".encode()) for k in keys])
        again = Member(queue, [EXECUTOR], group, instance_id="m1")
        poll_until(
            [again],
            lambda: sum(v.startswith("after-") for v in again.values() if v) == len(keys),
            "the next member of the group to get the records emitted after the commit",
        )
        assert sorted(again.values()) == sorted(f"after-{k}" for k in keys)
        again.close()
        reader.close()
        queue.close()


class OffloadContract:
    """Through ``OffloadingQueue`` a record over the limit travels through internal storage and
    arrives intact, in ``emit``, ``emit_many`` and ``produce_and_commit``."""

    def test_an_oversized_record_travels_through_storage(
        self, queue_settings: dict[str, Any], tmp_path: Path
    ) -> None:
        limit = Settings(**queue_settings).queue_max_record_bytes
        queue = OffloadingQueue(open_queue(queue_settings), LocalStorage(tmp_path), limit)
        big = b"{" + b"x" * (3 * limit) + b"}"
        queue.emit(EXECUTOR, "k1", big)
        queue.emit_many([(EXECUTOR, "k2", b"small"), (EXECUTOR, "k2", big + b"2")])
        member = Member(queue, [EXECUTOR], f"g-{uuid.uuid4().hex[:8]}", commit=False)
        poll_until([member], lambda: len(member.received) == 3, "three records")
        assert [r.value for r in member.received if r.key == "k1"] == [big]
        assert [r.value for r in member.received if r.key == "k2"] == [b"small", big + b"2"]
        member.subscription.produce_and_commit([(EXECUTIONS, "k3", big + b"3")], member.received)
        reader = Member(queue, [EXECUTIONS], f"reader-{uuid.uuid4().hex[:8]}")
        poll_until([reader], lambda: reader.received, "the transactional record")
        assert [r.value for r in reader.received] == [big + b"3"]
        member.close()
        reader.close()
        queue.close()


class QueueContract(TransactionContract, OffloadContract):
    """Behaviour every queue backend must show."""

    def test_records_of_one_key_keep_their_order_on_one_partition(
        self, queue_settings: dict[str, Any]
    ) -> None:
        queue = open_queue(queue_settings)
        keys = [f"exec-{i}" for i in range(6)]
        sent = [(EXECUTOR, k, f"{k}:{n}".encode()) for n in range(15) for k in keys]
        queue.emit_many(sent[:45])
        for record in sent[45:]:
            queue.emit(*record)
        queue.emit(EXECUTOR, keys[0], None)  # a tombstone keeps its place too
        member = Member(queue, [EXECUTOR], f"g-{uuid.uuid4().hex[:8]}")
        poll_until([member], lambda: len(member.received) >= len(sent) + 1, "every record")
        assert len(member.received) == len(sent) + 1

        for key in keys:
            mine = [r for r in member.received if r.key == key]
            expected = [f"{key}:{n}" for n in range(15)] + ([None] if key == keys[0] else [])
            assert values(mine) == expected, key
            assert len({r.partition for r in mine}) == 1, f"{key} spread over partitions"
        for partition in {r.partition for r in member.received}:
            offsets = [r.offset for r in member.received if r.partition == partition]
            assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        assert {r.topic for r in member.received} == {EXECUTOR}
        member.close()
        queue.close()

    def test_members_of_a_group_share_the_partitions_and_see_every_record_once(
        self, queue_settings: dict[str, Any]
    ) -> None:
        queue = open_queue(queue_settings)
        everything = all_partitions(queue, EXECUTOR)
        assert len(everything) >= 2, "the contract needs topics of at least two partitions"
        group = f"g-{uuid.uuid4().hex[:8]}"

        first = Member(queue, [EXECUTOR], group)
        poll_until(
            [first], lambda: first.held == everything, "the only member to get every partition"
        )
        second = Member(queue, [EXECUTOR], group)

        def shared() -> bool:
            a, b = set(first.subscription.assignment()), set(second.subscription.assignment())
            return bool(a and b) and not a & b and a | b == everything

        poll_until([first, second], shared, "the two members to share the partitions")
        # the callbacks said exactly what each member holds
        assert first.held == set(first.subscription.assignment())
        assert second.held == set(second.subscription.assignment())

        sent = [f"v{n}" for n in range(200)]
        queue.emit_many([(EXECUTOR, f"exec-{n % 23}", v.encode()) for n, v in enumerate(sent)])
        poll_until(
            [first, second],
            lambda: len(first.received) + len(second.received) >= len(sent),
            "the group to see every record",
        )
        seen = Counter(first.values() + second.values())
        assert sorted(seen) == sorted(sent) and set(seen.values()) == {1}
        for member in (first, second):
            assert {r.topic_partition for r in member.received} <= member.held

        # a member that leaves hands its partitions over at once
        second.close()
        poll_until([first], lambda: first.held == everything, "the remaining member to take over")
        queue.emit(EXECUTOR, "exec-1", b"last")
        poll_until([first], lambda: "last" in first.values(), "the remaining member to read on")
        assert Counter(first.values() + second.values())["last"] == 1
        first.close()
        queue.close()

    def test_records_a_killed_member_had_not_committed_go_to_the_survivor(
        self, queue_settings: dict[str, Any], spawn_member: SpawnMember
    ) -> None:
        queue = open_queue(queue_settings)
        group = f"g-{uuid.uuid4().hex[:8]}"
        keys = [f"exec-{i}" for i in range(10)]
        committed = [f"c-{k}" for k in keys]
        held_back = [f"h-{k}" for k in keys]

        member = spawn_member(topics=[EXECUTOR], group=group, commit_prefix="c-")
        queue.emit_many([(EXECUTOR, k, f"c-{k}".encode()) for k in keys])
        wait_until(
            lambda: sorted(member.committed()) == sorted(committed),
            DEADLINE,
            "the member to commit the first records",
            diagnose=member.diagnose,
        )
        queue.emit_many([(EXECUTOR, k, f"h-{k}".encode()) for k in keys])
        wait_until(
            lambda: set(held_back) <= set(member.received()),
            DEADLINE,
            "the member to receive (and not commit) the next records",
            diagnose=member.diagnose,
        )

        survivor = Member(queue, [EXECUTOR], group)
        poll_until([survivor], lambda: survivor.held, "the survivor to join the group")
        member.kill()
        poll_until(
            [survivor],
            lambda: set(held_back) <= set(survivor.values()),
            "the survivor to get what the killed member had not committed",
        )
        assert sorted(survivor.values()) == sorted(held_back)  # once each, nothing committed
        assert survivor.held == all_partitions(queue, EXECUTOR)
        survivor.close()
        queue.close()

    def test_paused_partitions_return_nothing_until_resumed(
        self, queue_settings: dict[str, Any]
    ) -> None:
        queue = open_queue(queue_settings)
        everything = all_partitions(queue, EXECUTOR)
        member = Member(queue, [EXECUTOR], f"g-{uuid.uuid4().hex[:8]}")
        poll_until([member], lambda: member.held == everything, "the member to get its partitions")

        # find two keys on different partitions
        queue.emit_many([(EXECUTOR, f"probe-{n}", b"probe") for n in range(40)])
        poll_until([member], lambda: len(member.received) >= 40, "the probes")
        partition_of = {r.key: r.partition for r in member.received}
        paused_key = "probe-0"
        other_key = next(k for k, p in partition_of.items() if p != partition_of[paused_key])
        paused = TopicPartition(EXECUTOR, partition_of[paused_key])
        member.received.clear()

        member.subscription.pause([paused])
        queue.emit_many([(EXECUTOR, paused_key, f"p{n}".encode()) for n in range(5)])
        queue.emit_many([(EXECUTOR, other_key, f"o{n}".encode()) for n in range(5)])
        poll_until([member], lambda: "o4" in member.values(), "the partition that is not paused")
        queue.emit(EXECUTOR, other_key, b"o-marker")
        poll_until([member], lambda: "o-marker" in member.values(), "the marker after the pause")
        assert not any(r.topic_partition == paused for r in member.received)

        member.subscription.resume([paused])
        poll_until([member], lambda: "p4" in member.values(), "the resumed partition")
        assert [v for v in member.values() if v and v.startswith("p")] == [
            f"p{n}" for n in range(5)
        ]

        # pause() without arguments pauses every assigned partition; polling keeps working
        member.received.clear()
        member.subscription.pause()
        queue.emit(EXECUTOR, other_key, b"while-paused")
        for _ in range(5):
            assert member.poll(timeout=0.3) == []
        member.subscription.resume()
        poll_until([member], lambda: "while-paused" in member.values(), "every partition resumed")
        assert member.values() == ["while-paused"]
        member.close()
        queue.close()

    def test_a_paused_partition_the_group_takes_away_comes_back_unpaused(
        self, queue_settings: dict[str, Any]
    ) -> None:
        """A member pauses everything, the group gives some of it to a second member, the first
        resumes what it still holds, the second leaves: what comes back is read. librdkafka
        keeps a partition's pause across its revocation and a new assignment: an indexer paused
        by a failed commit read nothing again once its partitions came back after a broker
        restart (the fault suite, notes/issue-13.md)."""
        queue = open_queue(queue_settings)
        everything = all_partitions(queue, EXECUTOR)
        group = f"g-{uuid.uuid4().hex[:8]}"
        first = Member(queue, [EXECUTOR], group)
        poll_until([first], lambda: first.held == everything, "the member to get its partitions")
        first.subscription.pause()
        second = Member(queue, [EXECUTOR], group)
        poll_until(
            [first, second],
            lambda: bool(first.held and second.held) and first.held | second.held == everything,
            "the second member to take some of the paused partitions",
        )
        first.subscription.resume()  # what it holds now
        second.close()
        poll_until([first], lambda: first.held == everything, "the partitions to come back")

        sent = [f"b{n}" for n in range(40)]
        queue.emit_many([(EXECUTOR, f"back-{n}", v.encode()) for n, v in enumerate(sent)])
        poll_until(
            [first],
            lambda: sorted(first.values()) == sorted(sent),
            "every record, on the partitions that came back too",
        )
        assert {r.topic_partition for r in first.received} == everything
        first.close()
        queue.close()

    def test_a_from_latest_member_sees_every_record_emitted_once_it_was_assigned(
        self, queue_settings: dict[str, Any]
    ) -> None:
        # what a live view relies on: once on_assigned said it holds a partition, nothing
        # written there afterwards is skipped (Kafka resolved "latest" only at the first
        # fetch, after such records)
        queue = open_queue(queue_settings)
        everything = all_partitions(queue, EXECUTIONS)
        keys = [f"exec-{i}" for i in range(12)]
        queue.emit_many([(EXECUTIONS, k, b"before") for k in keys])
        member = Member(queue, [EXECUTIONS], f"live-{uuid.uuid4().hex[:8]}", from_latest=True)

        def assigned() -> bool:
            # short polls: the member returns as soon as it is assigned, as a busy one does
            member.received.extend(member.subscription.poll(max_records=100, timeout=0.01))
            return member.held == everything

        wait_until(assigned, DEADLINE, "every partition assigned", interval=0)
        for key in keys:  # one by one, as snapshots come: the window spans several round trips
            queue.emit(EXECUTIONS, key, b"after")
        poll_until([member], lambda: len(member.received) >= len(keys), "every later record")
        got = sorted((r.key or "", (r.value or b"").decode()) for r in member.received)
        assert got == [(k, "after") for k in sorted(keys)]
        member.close()
        queue.close()

    def test_an_oversized_record_raises_message_too_large_and_is_not_written(
        self, queue_settings: dict[str, Any]
    ) -> None:
        limit = Settings(**queue_settings).queue_max_record_bytes
        queue = open_queue(queue_settings)
        key = "exec-1"
        too_big = b"x" * (limit - len(key) + 1)
        with pytest.raises(MessageTooLargeError):
            queue.emit(EXECUTOR, key, too_big)
        with pytest.raises(MessageTooLargeError):
            queue.emit_many([(EXECUTOR, key, b"small"), (EXECUTOR, key, too_big)])
        queue.emit(EXECUTOR, key, b"y" * (limit - len(key)))  # exactly the limit is accepted

        group = f"g-{uuid.uuid4().hex[:8]}"
        member = Member(queue, [EXECUTOR], group, instance_id="m1", commit=False)
        at_limit = limit - len(key)
        poll_until(
            [member],
            lambda: any(len(r.value or b"") == at_limit for r in member.received),
            "the record of the limit's size",
        )
        limit_record = member.received[-1]
        with pytest.raises(MessageTooLargeError):
            member.subscription.produce_and_commit(
                [(EXECUTIONS, key, b"fine"), (EXECUTIONS, key, too_big)], [limit_record]
            )
        # the subscription is still usable, and the failed unit left nothing
        member.subscription.produce_and_commit([(EXECUTIONS, key, b"after")], [limit_record])
        reader = Member(queue, [EXECUTIONS], f"reader-{uuid.uuid4().hex[:8]}")
        poll_until([reader], lambda: "after" in reader.values(), "the committed record")
        assert reader.values() == ["after"]
        assert [len(r.value or b"") for r in member.received] == [at_limit]  # no "small"
        reader.close()
        member.close()
        queue.close()
