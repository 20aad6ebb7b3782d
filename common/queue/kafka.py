"""The queue on Kafka (confluent-kafka), for the high-availability deployment.

How ``common.queue.base`` maps onto Kafka:

- a logical topic ``executor`` is the Kafka topic ``<prefix>executor``, created beforehand by
  ``lanner kafka init`` (``kafka_topics``); a record's partition comes from its key with the
  ``murmur2`` partitioner, the one of the Java client and of Faust, so a key lands on the same
  partition whichever client wrote it (co-partitioned tables depend on it);
- ``emit``/``emit_many``: an idempotent, ``acks=all`` producer, flushed before returning, so a
  record ``emit`` returned from is on every in-sync replica (as SQLite's is on disk);
- ``subscribe``: one consumer per member, ``read_committed``, never auto-committing, with the
  ``cooperative-sticky`` assignor (a rebalance moves only the partitions that change owner, so
  the callbacks name exactly what a member gains or loses). The Kafka group id is the group's
  name with the topic prefix, like the topics. With an ``instance_id`` the member is
  a static member (``group.instance.id``): a restart of the same instance gets its partitions
  back without a rebalance, and ``close`` does not hand them over before the session timeout;
- ``produce_and_commit``: one Kafka transaction of the member's transactional producer, whose
  ``transactional.id`` is ``<prefix><group>.<instance_id>``: the same for every incarnation of
  the instance, so a restarted instance fences its zombie and aborts the transaction it left
  open (before it reads the group's offsets). The offsets go with the consumer's group metadata
  (KIP-447), so a member that lost its partitions in a rebalance cannot commit them.

Every client error surfaces as ``QueueError`` (``MessageTooLargeError`` for a record over
``max_record_bytes``, checked before anything is sent so that no part of a batch is written).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from common.crash_points import BEFORE_COMMIT, crash_point
from common.errors import MessageTooLargeError, QueueError, RecordsReturnedError

from .base import AssignmentCallback, Outgoing, Record, TopicPartition
from .kafka_client import (
    LOGGER,
    client_config,
    create_admin,
    create_consumer,
    map_errors,
    to_queue_error,
)
from .kafka_topics import DEFAULT_PREFIX

# librdkafka counts a record's headers and framing too; our limit is on key + value bytes
_FRAMING_BYTES = 16 * 1024

ClientConfig = Mapping[str, str | int | float | bool]
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class KafkaQueue:
    """The ``Queue`` on a Kafka cluster whose topics ``lanner kafka init`` created.

    Args:
        bootstrap_servers: ``host:port[,host:port...]``.
        prefix: the topic name prefix given to ``lanner kafka init``.
        client_id: names this process in the brokers' logs.
        max_record_bytes: larger records (key + value) raise ``MessageTooLargeError``.
        consumer_config, producer_config: extra librdkafka properties (security, timeouts);
            Lanner's guarantees (acks=all, idempotence, read_committed, no auto-commit) win.
        timeout: seconds a flush, a transaction step or a metadata request may take.
        transaction_timeout: seconds a whole ``produce_and_commit`` may take before it is left
            to a new transactional producer (below the worker's cut-off).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        client_id: str | None = None,
        max_record_bytes: int = 1_000_000,
        consumer_config: ClientConfig | None = None,
        producer_config: ClientConfig | None = None,
        timeout: float = 30.0,
        transaction_timeout: float = 10.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.prefix = prefix
        self.client_id = client_id
        self.max_record_bytes = max_record_bytes
        self.timeout = timeout
        self.transaction_timeout = transaction_timeout
        self._consumer_config = dict(consumer_config or {})
        self._producer_config = dict(producer_config or {})
        self._producer: Producer | None = None
        self._admin: Any = None
        self._partitions: dict[str, int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ names and limits
    def kafka_topic(self, topic: str) -> str:
        return self.prefix + topic

    def logical_topic(self, kafka_topic: str) -> str:
        return kafka_topic.removeprefix(self.prefix)

    def check_sizes(self, records: Sequence[Outgoing]) -> None:
        for topic, key, value in records:
            size = (len(key.encode()) if key else 0) + (len(value) if value else 0)
            if size > self.max_record_bytes:
                raise MessageTooLargeError(
                    f"a record of {size} bytes for topic '{topic}' (key {key!r}) is over the "
                    f"queue's limit of {self.max_record_bytes} bytes"
                )

    # ------------------------------------------------------------------ producing
    def producer_settings(self, **extra: Any) -> dict[str, Any]:
        return client_config(
            self.bootstrap_servers,
            self.client_id,
            **{
                "linger.ms": 5,
                "compression.type": "lz4",
                **self._producer_config,
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                "message.max.bytes": max(1_000_000, self.max_record_bytes + _FRAMING_BYTES),
                **extra,
            },
        )

    def send(
        self, producer: Producer, records: Sequence[Outgoing], on_delivery: DeliveryCallback
    ) -> None:
        """Queues ``records`` on ``producer`` (the caller flushes)."""
        for topic, key, value in records:
            kafka_topic = self.kafka_topic(topic)
            with map_errors(f"producing to {kafka_topic}"):
                deadline = time.monotonic() + self.timeout
                while True:
                    try:
                        producer.produce(
                            kafka_topic,
                            value=value,
                            key=key.encode() if key is not None else None,
                            on_delivery=on_delivery,
                        )
                        break
                    except BufferError:
                        # the local queue is full: serve delivery reports to make room
                        if time.monotonic() >= deadline:
                            raise
                        producer.poll(0.1)

    def flush(self, producer: Producer, failures: list[QueueError], what: str) -> None:
        with map_errors(what):
            remaining = producer.flush(self.timeout)
        if failures:
            raise failures[0]
        if remaining:
            raise QueueError(
                f"Kafka: {what} failed: {remaining} record(s) not delivered within "
                f"{self.timeout:g} s"
            )

    def _shared_producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                with map_errors("creating a producer"):
                    self._producer = Producer(self.producer_settings())
            return self._producer

    def emit(self, topic: str, key: str | None, value: bytes | None) -> None:
        self.emit_many([(topic, key, value)])

    def emit_many(self, records: Sequence[Outgoing]) -> None:
        """Sends the records and waits until every in-sync replica has them. Not atomic: after
        a failure some of them may be written (``produce_and_commit`` is)."""
        if not records:
            return
        self.check_sizes(records)
        producer = self._shared_producer()
        failures: list[QueueError] = []

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(to_queue_error(error, f"delivering to {message.topic()}"))

        self.send(producer, records, delivered)
        self.flush(producer, failures, "flushing the producer")

    # ------------------------------------------------------------------ consuming
    def consumer_settings(self, instance_id: str | None) -> dict[str, Any]:
        settings: dict[str, Any] = {
            **self._consumer_config,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
        if instance_id is not None:
            settings["group.instance.id"] = instance_id
        return settings

    def subscribe(
        self,
        topics: Sequence[str],
        group: str,
        *,
        from_latest: bool = False,
        on_assigned: AssignmentCallback | None = None,
        on_revoked: AssignmentCallback | None = None,
        instance_id: str | None = None,
    ) -> KafkaSubscription:
        return KafkaSubscription(
            self,
            list(topics),
            group,
            from_latest=from_latest,
            on_assigned=on_assigned,
            on_revoked=on_revoked,
            instance_id=instance_id,
        )

    def admin(self, renew: bool = False) -> Any:
        """An admin client of this queue's cluster, created once (``renew``: a new one, after
        an error that stale metadata may have caused, e.g. a broker restarted)."""
        with self._lock:
            if self._admin is None or renew:
                self._admin = create_admin(self.bootstrap_servers)
            return self._admin

    def partitions(self, topic: str) -> int:
        known = self._partitions.get(topic)
        if known is not None:
            return known
        name = self.kafka_topic(topic)
        admin = create_admin(self.bootstrap_servers)
        with map_errors(f"reading the metadata of {name}"):
            metadata = admin.list_topics(name, timeout=self.timeout).topics.get(name)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise QueueError(
                f"Kafka topic {name} does not exist on {self.bootstrap_servers}: run "
                "`lanner kafka init` with the same prefix"
            )
        self._partitions[topic] = len(metadata.partitions)
        return self._partitions[topic]

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            self.flush(producer, [], "flushing the producer")


class KafkaSubscription:
    """One member of a consumer group, with its own transactional producer."""

    def __init__(
        self,
        queue: KafkaQueue,
        topics: list[str],
        group: str,
        *,
        from_latest: bool,
        on_assigned: AssignmentCallback | None,
        on_revoked: AssignmentCallback | None,
        instance_id: str | None,
    ) -> None:
        self._queue = queue
        self.group = group
        self.instance_id = instance_id
        self.transactional_id = f"{queue.prefix}{group}.{instance_id or uuid.uuid4().hex}"
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._from_latest = from_latest
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._closed = False
        self._producer: Producer | None = None
        self._retired: list[Producer] = []
        self._broken: QueueError | None = None
        self._pending_commit: Future[list[KafkaPartition] | None] | None = None
        if instance_id is not None:
            # before the consumer reads the group's offsets: a transaction the previous
            # incarnation left open holds them (and the records after it) until it is aborted
            self._producer = self._transactional_producer()
        self._consumer: Consumer = create_consumer(
            queue.bootstrap_servers,
            queue.prefix + group,  # two deployments (prefixes) on one cluster share no group
            from_latest=from_latest,
            client_id=queue.client_id,
            **queue.consumer_settings(instance_id),
        )
        with map_errors(f"subscribing group {group} to {topics}"):
            self._consumer.subscribe(
                [queue.kafka_topic(t) for t in topics],
                on_assign=self._assign,
                on_revoke=self._revoke,
                on_lost=self._lose,
            )

    # ------------------------------------------------------------------ rebalance callbacks
    # librdkafka calls these from inside poll/consume/close, on the member's thread.
    def _ours(self, partitions: Sequence[KafkaPartition]) -> list[TopicPartition]:
        return [TopicPartition(self._queue.logical_topic(p.topic), p.partition) for p in partitions]

    def _assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        if self._from_latest:
            partitions = self._latest_positions(consumer, partitions)
        consumer.incremental_assign(partitions)
        if partitions:
            # librdkafka keeps a partition's pause across its revocation and a new assignment
            # (librdkafka#1849): one paused before the group took it away came back paused for
            # good, as nothing here knew it was (an indexer paused by a failed commit, its
            # partitions lost in a broker restart, assigned again: it polled for ever, reading
            # nothing). A partition is assigned unpaused; pause() it again after.
            consumer.resume([KafkaPartition(p.topic, p.partition) for p in partitions])
        gained = self._ours(partitions)
        self._assigned.update(gained)
        if gained and self._on_assigned is not None:
            self._on_assigned(gained)

    def _latest_positions(
        self, consumer: Consumer, partitions: list[KafkaPartition]
    ) -> list[KafkaPartition]:
        """``from_latest``: partitions the group never committed start at their last stable
        offset read now, so the member sees every record committed after ``on_assigned``
        (librdkafka's own reset to "latest" happens later, at the first fetch, and skips what
        was written in between: a live view would miss the first updates).
        """
        from confluent_kafka import IsolationLevel
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        # a topic just created has no leaders for a moment (NOT_LEADER_FOR_PARTITION, which
        # librdkafka does not flag retriable), a restarted broker answers with a newer leader
        # epoch: ask again, each attempt and the whole bounded (this blocks the member's poll)
        deadline = time.monotonic() + min(self._queue.timeout, 15.0)
        renew = False
        while True:
            attempt = max(0.5, min(5.0, deadline - time.monotonic()))
            try:
                committed = consumer.committed(partitions, attempt)
                unset = [p for p in committed if p.offset < 0]
                if not unset:
                    return list(committed)
                futures = self._queue.admin(renew).list_offsets(
                    {KafkaPartition(p.topic, p.partition): OffsetSpec.latest() for p in unset},  # type: ignore[no-untyped-call]
                    isolation_level=IsolationLevel.READ_COMMITTED,
                    request_timeout=attempt,
                )
                latest = {
                    (tp.topic, tp.partition): future.result(timeout=attempt + 1).offset
                    for tp, future in futures.items()
                }
                break
            except (KafkaException, TimeoutError) as exc:
                if time.monotonic() >= deadline:
                    # librdkafka's own reset to "latest" at the first fetch still applies
                    LOGGER.warning("Kafka group %s: latest offsets not read (%s)", self.group, exc)
                    return partitions
                renew = True
                time.sleep(0.1)
        return [
            KafkaPartition(p.topic, p.partition, latest.get((p.topic, p.partition), p.offset))
            for p in committed
        ]

    def _revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        lost = self._ours(partitions)
        try:
            if lost and self._on_revoked is not None:
                self._on_revoked(lost)  # may still commit them: they are ours until it returns
        finally:
            self._assigned.difference_update(lost)
            self._paused.difference_update(lost)

    def _lose(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        # the group already gave them to another member: a commit now could move its offsets
        lost = self._ours(partitions)
        if self._producer is not None:
            # lost after the group coordinator went away (a broker restart): librdkafka's
            # send_offsets_to_transaction can then wait for ever on the coordinator it cached
            # (confluentinc/librdkafka#5456, #5511); the next transaction takes a new producer
            # (same transactional id)
            self._retire()
        self._assigned.difference_update(lost)
        self._paused.difference_update(lost)
        if lost and self._on_revoked is not None:
            self._on_revoked(lost)

    # ------------------------------------------------------------------ Subscription
    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        if self._closed:
            return []
        with map_errors(f"polling for group {self.group}"):
            # consume() waits until it has max_records or the timeout passed: take what is
            # there, else wait for one message only, then take what came with it
            messages = self._consumer.consume(max_records, 0)
            if not messages and timeout > 0:
                first = self._consumer.poll(timeout)
                if first is not None:
                    messages = [first, *self._consumer.consume(max_records - 1, 0)]
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise to_queue_error(error, f"consuming for group {self.group}")
                # transient (a broker restarting...): librdkafka retries on its own
                LOGGER.warning("Kafka consumer of group %s: %s", self.group, error.str())
                continue
            key = message.key()
            records.append(
                Record(
                    topic=self._queue.logical_topic(message.topic() or ""),
                    key=key.decode() if key is not None else None,
                    value=message.value(),
                    partition=message.partition() or 0,
                    offset=message.offset() or 0,
                )
            )
        return records

    def _offsets(self, records: Sequence[Record]) -> list[KafkaPartition]:
        """The next offset to read per partition; partitions this member no longer holds are
        left out (their new owner reads those records again: at-least-once, never a rewind of
        its progress)."""
        newest: dict[TopicPartition, int] = {}
        for record in records:
            tp = record.topic_partition
            newest[tp] = max(newest.get(tp, -1), record.offset)
        return [
            KafkaPartition(self._queue.kafka_topic(tp.topic), tp.partition, offset + 1)
            for tp, offset in newest.items()
            if tp in self._assigned
        ]

    def commit(self, records: Sequence[Record]) -> None:
        offsets = self._offsets(records)
        if not offsets or self._closed:
            return
        what = f"committing offsets of group {self.group}"
        pending = self._pending_commit
        if pending is not None and not pending.done():
            raise QueueError(f"Kafka: {what}: the previous commit has not returned yet")

        # librdkafka's synchronous commit waits without a deadline: after a broker restart an
        # indexer stayed blocked in it for minutes, right after a commit failed with
        # _WAIT_COORD (tests/faults). It runs apart; past the deadline the caller gets an error
        # and polls on (serving the rebalance), while the blocked call ends on its own
        def run() -> list[KafkaPartition] | None:
            with map_errors(what):
                return self._consumer.commit(offsets=offsets, asynchronous=False)

        outcome = _apart(run, "lanner-kafka-commit")
        try:
            committed = outcome.result(timeout=self._queue.timeout)
        except FutureTimeout:
            self._pending_commit = outcome
            raise QueueError(
                f"Kafka: {what}: no answer within {self._queue.timeout:g} s (group coordinator "
                "away?); the records are committed with a later batch or read again"
            ) from None
        for partition in committed or []:
            if partition.error is not None:
                raise to_queue_error(partition.error, f"committing offsets of group {self.group}")

    def _transactional_producer(self) -> Producer:
        # a producer killed inside a transaction blocks the read_committed readers of its
        # partitions (the executor) until the broker aborts it: after the transaction timeout,
        # not librdkafka's 60 s (tests/faults: a worker killed mid-claim stalled a partition)
        timeout_ms = max(1000, int(self._queue.transaction_timeout * 1000))
        settings = self._queue.producer_settings(
            **{"transaction.timeout.ms": timeout_ms, "transactional.id": self.transactional_id}
        )
        settings.update(
            {k: v for k, v in self._queue._producer_config.items() if k == "transaction.timeout.ms"}
        )
        with map_errors(f"creating the transactional producer {self.transactional_id}"):
            producer = Producer(settings)
        with map_errors(f"initialising transactions of {self.transactional_id}"):
            producer.init_transactions(self._queue.timeout)
        return producer

    def produce_and_commit(self, produce: Sequence[Outgoing], records: Sequence[Record]) -> None:
        if self._broken is not None:
            raise self._broken
        self._queue.check_sizes(produce)
        offsets = self._offsets(records)
        if not produce and not offsets:
            return
        if self._producer is None:
            self._producer = self._transactional_producer()
        producer = self._producer
        what = f"the transaction of {self.transactional_id}"
        # librdkafka's send_offsets_to_transaction can outlive its own timeout after a broker
        # restart (seen blocked for 40 s with a 30 s timeout; confluentinc/librdkafka#5456):
        # the transaction runs apart, and past the deadline it is left to a new producer,
        # whose init_transactions fences this one and aborts what it left open
        outcome = _apart(
            lambda: self._transact(producer, produce, offsets, what), "lanner-kafka-transaction"
        )
        deadline = self._queue.transaction_timeout
        try:
            outcome.result(timeout=deadline)
        except FutureTimeout:
            if self._producer is producer:
                self._retire()
            raise QueueError(
                f"Kafka: {what} did not finish within {deadline:g} s (brokers restarting?); "
                "it is retried with a new producer"
            ) from None
        except QueueError as exc:
            if not _group_moved(exc) or not self._rewind(records):
                raise
            # retrying as is fails for ever: the group metadata the offsets are sent with
            # changes only when a poll serves the rebalance (seen after a broker restart:
            # both workers retried ILLEGAL_GENERATION for minutes, claiming nothing)
            raise RecordsReturnedError(
                f"Kafka: {what} was refused, the group {self.group} moved on ({exc}); its "
                "records are read again"
            ) from exc

    def _rewind(self, records: Sequence[Record]) -> bool:
        """Seek each partition of ``records`` this member still holds back to its first one;
        False if a seek failed (the records are then not read again by this member)."""
        first: dict[TopicPartition, int] = {}
        for record in records:
            tp = record.topic_partition
            first[tp] = min(first.get(tp, record.offset), record.offset)
        try:
            for tp, offset in first.items():
                if tp in self._assigned:
                    self._consumer.seek(
                        KafkaPartition(self._queue.kafka_topic(tp.topic), tp.partition, offset)
                    )
        except KafkaException as exc:
            LOGGER.warning("Kafka consumer of group %s: rewind failed: %s", self.group, exc)
            return False
        return True

    def _transact(
        self,
        producer: Producer,
        produce: Sequence[Outgoing],
        offsets: list[KafkaPartition],
        what: str,
    ) -> None:
        failures: list[QueueError] = []

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(to_queue_error(error, f"delivering to {message.topic()}"))

        with map_errors(f"beginning {what}"):
            producer.begin_transaction()
        try:
            self._queue.send(producer, produce, delivered)
            if offsets:
                with map_errors(f"sending offsets to {what}"):
                    producer.send_offsets_to_transaction(
                        offsets, self._consumer.consumer_group_metadata(), self._queue.timeout
                    )
            # delivered inside the open transaction before it commits: a crash from here on
            # leaves records on the brokers that read_committed readers must never see
            self._queue.flush(producer, failures, f"flushing {what}")
            crash_point(BEFORE_COMMIT)
            self._commit_transaction(producer, what)
        except QueueError as exc:
            self._abort(producer, exc, what)
            raise

    def _commit_transaction(self, producer: Producer, what: str) -> None:
        deadline = time.monotonic() + self._queue.timeout
        while True:
            try:
                producer.commit_transaction(self._queue.timeout)
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = isinstance(error, KafkaError) and error.retriable()
                if not retriable or time.monotonic() >= deadline:
                    with map_errors(f"committing {what}"):
                        raise

    def _abort(self, producer: Producer, failure: QueueError, what: str) -> None:
        if self._producer is not producer:
            return  # already left to a new producer (a transaction past its deadline)
        cause = failure.__cause__
        error = cause.args[0] if isinstance(cause, KafkaException) and cause.args else None
        if isinstance(error, KafkaError) and error.fatal():
            # fenced by a newer incarnation of this instance (or another fatal state): this
            # member must not write again; a new subscription gets a new producer
            self._broken = QueueError(f"Kafka: {what} can no longer be used: {failure}")
            self._producer = None
            return
        try:
            producer.abort_transaction(self._queue.timeout)
        except KafkaException:
            # the brokers did not answer in time (a restart): the next transaction takes a new
            # producer, whose init_transactions fences this one and aborts what it left open
            self._retire()

    def _retire(self) -> None:
        # kept, not destroyed: its destructor may wait for the brokers
        if self._producer is not None:
            self._retired.append(self._producer)
            self._producer = None

    def lag(self, timeout: float = 5.0) -> dict[TopicPartition, int]:
        """Records of each partition this member holds that ``poll`` has not returned yet: the
        last stable offset minus the position (the committed offset before the first fetch).
        Two requests to the brokers whatever the number of partitions (the end offsets in one
        ListOffsets, the committed ones in one OffsetFetch when needed): every few seconds is
        cheap, per poll is not."""
        from confluent_kafka import IsolationLevel
        from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

        held = sorted(self._assigned)
        if not held or self._closed:
            return {}
        kafka = self._kafka(held)
        with map_errors(f"reading the lag of group {self.group}"):
            futures = self._queue.admin().list_offsets(
                {KafkaPartition(p.topic, p.partition): OffsetSpec.latest() for p in kafka},  # type: ignore[no-untyped-call]
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=timeout,
            )
            ends = {
                (tp.topic, tp.partition): future.result(timeout=timeout + 1).offset
                for tp, future in futures.items()
            }
            positions = self._consumer.position(kafka)
            unknown = [p for p in positions if p.offset < 0]
            committed = {
                (p.topic, p.partition): p.offset
                for p in (self._consumer.committed(unknown, timeout) if unknown else [])
            }
            offsets = {
                (p.topic, p.partition): p.offset
                if p.offset >= 0
                else committed.get((p.topic, p.partition), -1)
                for p in positions
            }
            never = [KafkaPartition(t, n) for (t, n), offset in offsets.items() if offset < 0]
            if never:  # never committed: the group starts at the oldest record
                futures = self._queue.admin().list_offsets(
                    {p: OffsetSpec.earliest() for p in never},  # type: ignore[no-untyped-call]
                    request_timeout=timeout,
                )
                for tp, future in futures.items():
                    offsets[(tp.topic, tp.partition)] = future.result(timeout=timeout + 1).offset
        lags: dict[TopicPartition, int] = {}
        for tp, position in zip(held, positions, strict=True):
            key = (position.topic, position.partition)
            if ends.get(key, -1) >= 0:
                lags[tp] = max(0, ends[key] - max(offsets[key], 0))
        return lags

    def assignment(self) -> list[TopicPartition]:
        if self._closed:
            return []
        with map_errors(f"reading the assignment of group {self.group}"):
            return self._ours(self._consumer.assignment())

    def _targets(self, partitions: Sequence[TopicPartition] | None) -> list[TopicPartition]:
        if partitions is None:
            return sorted(self._assigned, key=lambda tp: (tp.topic, tp.partition))
        return [tp for tp in partitions if tp in self._assigned]

    def _kafka(self, partitions: Sequence[TopicPartition]) -> list[KafkaPartition]:
        return [
            KafkaPartition(self._queue.kafka_topic(tp.topic), tp.partition) for tp in partitions
        ]

    def pause(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        """Partitions this member does not hold are ignored; a paused partition that is revoked
        and later assigned again comes back resumed."""
        targets = self._targets(partitions)
        if targets and not self._closed:
            with map_errors(f"pausing partitions of group {self.group}"):
                self._consumer.pause(self._kafka(targets))
            self._paused.update(targets)

    def resume(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        targets = self._targets(partitions)
        if targets and not self._closed:
            with map_errors(f"resuming partitions of group {self.group}"):
                self._consumer.resume(self._kafka(targets))
            self._paused.difference_update(targets)

    def close(self) -> None:
        if self._closed:
            return
        try:
            with map_errors(f"closing the consumer of group {self.group}"):
                self._consumer.close()
        finally:
            self._closed = True
            self._producer = None


_GROUP_MOVED = {
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
}


def _group_moved(failure: QueueError) -> bool:
    """The offsets were refused because this member's generation of the group is over."""
    cause = failure.__cause__
    error = cause.args[0] if isinstance(cause, KafkaException) and cause.args else None
    if isinstance(error, KafkaError) and error.code() in _GROUP_MOVED:
        return True
    text = str(failure)
    return any(name in text for name in ("ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID"))


_T = TypeVar("_T")


def _apart(call: Callable[[], _T], name: str) -> Future[_T]:
    """``call`` on a daemon thread of its own: the caller waits on the future with a deadline
    (librdkafka calls that can wait for ever are left to end on their own)."""
    outcome: Future[_T] = Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return outcome
