"""confluent-kafka plumbing: configured clients, topic creation, and error translation.

Every Kafka call of Lanner goes through these helpers so that client errors surface as
``common.errors.QueueError`` (``MessageTooLargeError`` for an oversized record), raised
``from`` the original ``KafkaException``. Producers are idempotent with ``acks=all``: a record
is acknowledged only once every in-sync replica has it, and retries never duplicate it.
Consumers never auto-commit: callers commit after they processed (at-least-once).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from common.errors import MessageTooLargeError, QueueError

if TYPE_CHECKING:
    from common.queue.kafka_topics import KafkaTopic

# Topic configs `lanner kafka init` enforces on topics that already exist.
MANAGED_CONFIGS = ("cleanup.policy", "min.insync.replicas")

# librdkafka's own log lines (connection refused, ...) go to this logger instead of stderr.
LOGGER = logging.getLogger("lanner.kafka")

_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE}


def to_queue_error(error: KafkaError | None, what: str) -> QueueError:
    """The Lanner error for a librdkafka error (``None`` for an unknown failure)."""
    if error is None:
        return QueueError(f"Kafka: {what} failed")
    message = f"Kafka: {what} failed: {error.str()} ({error.name()})"
    if error.code() in _TOO_LARGE:
        return MessageTooLargeError(message)
    return QueueError(message)


@contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Translates confluent-kafka exceptions raised inside the block into ``QueueError``."""
    try:
        yield
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        raise to_queue_error(error, what) from exc
    except BufferError as exc:
        raise QueueError(f"Kafka: {what} failed: local producer queue is full") from exc


def client_config(bootstrap_servers: str, client_id: str | None = None, **extra: Any) -> dict:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "client.id": client_id or f"lanner-{socket.gethostname()}",
        "logger": LOGGER,
        # Topics come from `lanner kafka init` only: a metadata request must never create one
        # on a broker that auto-creates, or a missing topic goes unnoticed with 1 partition.
        "allow.auto.create.topics": False,
    }
    config.update(extra)
    return config


class KafkaProducer:
    """An idempotent, ``acks=all`` producer whose ``flush`` raises on any failed delivery."""

    def __init__(self, bootstrap_servers: str, client_id: str | None = None, **config: Any) -> None:
        settings = client_config(
            bootstrap_servers,
            client_id,
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "lz4",
                **config,
            },
        )
        with map_errors("creating a producer"):
            self._producer = Producer(settings)
        self._failures: list[QueueError] = []

    def _on_delivery(self, error: KafkaError | None, message: Any) -> None:
        if error is not None:
            self._failures.append(to_queue_error(error, f"delivering to {message.topic()}"))

    def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queues one record (``value=None`` is a tombstone); ``flush`` waits for delivery."""
        encoded_key = key.encode() if isinstance(key, str) else key
        with map_errors(f"producing to {topic}"):
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=encoded_key,
                    headers=list(headers) if headers else None,
                    on_delivery=self._on_delivery,
                )
            except BufferError:
                # Local queue full: serve delivery callbacks to make room, then retry once.
                self._producer.poll(1.0)
                self._producer.produce(
                    topic, value=value, key=encoded_key, on_delivery=self._on_delivery
                )
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Waits until every queued record is acknowledged; raises the first delivery failure."""
        with map_errors("flushing the producer"):
            remaining = self._producer.flush(timeout)
        failures, self._failures = self._failures, []
        if failures:
            raise failures[0]
        if remaining:
            raise QueueError(f"Kafka: {remaining} record(s) not delivered within {timeout:g}s")

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)


def create_consumer(
    bootstrap_servers: str,
    group: str,
    *,
    from_latest: bool = False,
    client_id: str | None = None,
    **config: Any,
) -> Consumer:
    """A consumer of ``group`` that commits only when told to (``consumer.commit``)."""
    settings = client_config(
        bootstrap_servers,
        client_id,
        **{
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "latest" if from_latest else "earliest",
            "isolation.level": "read_committed",
            **config,
        },
    )
    with map_errors(f"creating a consumer for group {group}"):
        return Consumer(settings)


def create_admin(bootstrap_servers: str, **config: Any) -> AdminClient:
    with map_errors("creating an admin client"):
        return AdminClient(client_config(bootstrap_servers, **config))


def broker_count(admin: AdminClient, timeout: float = 10.0) -> int:
    with map_errors("reading cluster metadata"):
        return len(admin.list_topics(timeout=timeout).brokers)


@dataclass(frozen=True)
class TopicChange:
    """What ``ensure_topics`` did to one topic."""

    name: str
    action: Literal["created", "updated", "unchanged", "mismatch"]
    detail: str = ""


def ensure_topics(
    admin: AdminClient, topics: Sequence[KafkaTopic], timeout: float = 30.0
) -> list[TopicChange]:
    """Creates the missing topics and re-applies the managed configs of existing ones.

    Idempotent: a second run reports every topic ``unchanged``. Partition counts and replication
    factors of existing topics are never changed (that would move keys between partitions);
    a difference is reported as ``mismatch``.
    """
    with map_errors("reading cluster metadata"):
        existing = admin.list_topics(timeout=timeout).topics
    changes: dict[str, TopicChange] = {}

    missing = [topic for topic in topics if topic.name not in existing]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(t.name, t.partitions, t.replication_factor, config=dict(t.config))
                for t in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                with map_errors(f"creating topic {name}"):
                    future.result(timeout=timeout)
            except QueueError as exc:
                cause = exc.__cause__
                if not (
                    isinstance(cause, KafkaException)
                    and cause.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    raise
            else:
                changes[name] = TopicChange(name, "created")
        _wait_visible(admin, [t.name for t in missing], timeout)

    present = [t for t in topics if t.name not in changes]
    if present:
        with map_errors("reading cluster metadata"):
            existing = admin.list_topics(timeout=timeout).topics
        for topic, change in zip(present, _reconcile(admin, present, timeout), strict=True):
            shape = _shape_differences(topic, existing.get(topic.name))
            action = "mismatch" if shape else change.action
            detail = "; ".join(d for d in [change.detail, *shape] if d)
            changes[topic.name] = TopicChange(topic.name, action, detail)
    return [changes[topic.name] for topic in topics]


def _wait_visible(admin: AdminClient, names: Sequence[str], timeout: float) -> None:
    """Return once every topic has a leader for each partition: a created topic is usable only
    then (altering or producing to it earlier fails with UNKNOWN_TOPIC_OR_PART)."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        with map_errors("reading cluster metadata"):
            metadata = admin.list_topics(timeout=timeout).topics
        pending = {
            name
            for name in pending
            if name not in metadata
            or not metadata[name].partitions
            or any(p.leader < 0 for p in metadata[name].partitions.values())
        }
        if pending and time.monotonic() >= deadline:
            raise QueueError(
                f"topics {sorted(pending)} were created but have no leader after {timeout:g} s: "
                "check that the brokers are up"
            )
        if pending:
            time.sleep(0.1)


def _shape_differences(topic: KafkaTopic, metadata: Any) -> list[str]:
    if metadata is None or not metadata.partitions:
        return []
    differences = []
    partitions = len(metadata.partitions)
    replicas = len(next(iter(metadata.partitions.values())).replicas)
    if partitions != topic.partitions:
        differences.append(f"has {partitions} partitions, plan says {topic.partitions}")
    if replicas != topic.replication_factor:
        differences.append(f"has replication {replicas}, plan says {topic.replication_factor}")
    return differences


def _reconcile(
    admin: AdminClient, topics: Sequence[KafkaTopic], timeout: float
) -> list[TopicChange]:
    resources = [ConfigResource(ResourceType.TOPIC, t.name) for t in topics]
    with map_errors("describing topic configs"):
        described = {
            resource.name: future.result(timeout=timeout)
            for resource, future in admin.describe_configs(resources).items()
        }
    results = []
    for topic in topics:
        current = described[topic.name]
        wrong = {
            key: topic.config[key]
            for key in MANAGED_CONFIGS
            if key in topic.config
            and (key not in current or current[key].value != topic.config[key])
        }
        if not wrong:
            results.append(TopicChange(topic.name, "unchanged"))
            continue
        resource = ConfigResource(
            ResourceType.TOPIC,
            topic.name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in wrong.items()
            ],
        )
        with map_errors(f"updating configs of {topic.name}"):
            for future in admin.incremental_alter_configs([resource]).values():
                future.result(timeout=timeout)
        was = ", ".join(
            f"{key}={current[key].value if key in current else '?'}->{value}"
            for key, value in wrong.items()
        )
        results.append(TopicChange(topic.name, "updated", was))
    return results


def read_to_end(bootstrap_servers: str, topic: str, timeout: float = 60.0) -> dict[str, bytes]:
    """The latest value of every key of a compacted topic, read from its start to the end it had
    when called (tombstones remove their key). No group offsets are stored."""
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = create_consumer(bootstrap_servers, f"lanner-reader-{uuid.uuid4().hex}")
    latest: dict[str, bytes] = {}
    try:
        with map_errors(f"reading {topic}"):
            partitions = sorted(
                consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
            )
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in partitions
            }
            pending = {p for p, end in ends.items() if end > 0}
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
            deadline = time.monotonic() + timeout
            while pending:
                if time.monotonic() > deadline:
                    raise QueueError(f"Kafka: {topic} not read to its end within {timeout:g}s")
                for message in consumer.consume(500, 0.5):
                    if message.error() is not None or message.key() is None:
                        continue
                    key = message.key().decode()
                    if message.value() is None:
                        latest.pop(key, None)
                    else:
                        latest[key] = message.value()
                    if message.offset() + 1 >= ends[message.partition()]:
                        pending.discard(message.partition())
    finally:
        consumer.close()
    return latest
