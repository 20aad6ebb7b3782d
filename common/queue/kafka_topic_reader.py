"""Reading a whole (compacted) Kafka topic into memory, and keeping up with it.

``TopicReader`` reads every partition of a topic from its start on a thread of its own, with
a consumer of its own and no group offsets (every instance sees every record), and hands each
record to ``_apply`` with the lock held. ``sync()`` waits until it has read what the topic held
when called (the end offsets, asked with a second consumer: a consumer is not used from two
threads). What the flows topic (``common.flow.topic_source``) and the API tokens topic
(``common.auth.kafka_store``) both need.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from common.queue.kafka_client import create_consumer

log = logging.getLogger("lanner.queue")


class TopicReader:
    """``start()`` (reads the topic to its end), ``sync()`` before trusting a miss, ``stop()``.
    Subclasses implement ``_apply`` and read their state under ``self._lock``."""

    #: names the reader's consumers and log lines (``flows``, ``tokens``)
    what = "topic"

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._lock = threading.Lock()
        self._read = threading.Condition(self._lock)
        self._positions: dict[int, int] = {}  # partition -> next offset to read
        self._partitions: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe_lock = threading.Lock()

    def _apply(self, key: bytes | None, value: bytes | None, partition: int) -> None:
        """One record (``value`` None: a tombstone); called with the lock held."""
        raise NotImplementedError

    def _applied(self) -> None:
        """After a batch of records was applied, lock held."""

    def start(self) -> None:
        self._consumer = create_consumer(
            self.bootstrap_servers, f"lanner-{self.what}-reader-{uuid.uuid4().hex}"
        )
        metadata = self._consumer.list_topics(self.topic, timeout=30)
        described = metadata.topics.get(self.topic)
        self._partitions = sorted(described.partitions) if described is not None else []
        self._partitions = self._partitions or [0]
        self._consumer.assign(
            [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self._partitions]
        )
        self._probe = create_consumer(
            self.bootstrap_servers, f"lanner-{self.what}-probe-{uuid.uuid4().hex}"
        )
        self._thread = threading.Thread(target=self._run, name=f"lanner-{self.what}", daemon=True)
        self._thread.start()
        self.sync()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._consumer.close()
            self._probe.close()
            self._thread = None

    def sync(self, timeout: float = 30.0) -> bool:
        """Waits until every record written before this call is read; False on timeout."""
        deadline = time.monotonic() + timeout
        ends: dict[int, int] = {}
        with self._probe_lock:
            for partition in self._partitions:
                while True:
                    try:
                        _low, high = self._probe.get_watermark_offsets(
                            TopicPartition(self.topic, partition), timeout=timeout, cached=False
                        )
                        break
                    except KafkaException as exc:  # a topic created a moment ago: no leader yet
                        if time.monotonic() >= deadline:
                            raise
                        log.info("%s topic end offsets not read yet (%s); retrying", self.what, exc)
                        self._stop.wait(0.2)
                ends[partition] = high
        with self._read:
            while any(self._positions.get(p, 0) < end for p, end in ends.items() if end > 0):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("%s topic not read to its end within %.0f s", self.what, timeout)
                    return False
                self._read.wait(remaining)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._consumer.consume(500, 0.2)
            except Exception:  # noqa: BLE001 - the reader retries; its component keeps going
                log.exception("reading the %s topic failed; retrying", self.what)
                self._stop.wait(1.0)
                continue
            with self._read:
                for message in messages:
                    offset, partition = message.offset(), message.partition()
                    if message.error() is not None or offset is None or partition is None:
                        continue
                    self._apply(message.key(), message.value(), partition)
                    self._positions[partition] = offset + 1
                if messages:
                    self._applied()
                self._read.notify_all()
            if not messages:
                self._caught_up()

    def _caught_up(self) -> None:
        """Nothing new: each partition's position is its end."""
        for partition in self._partitions:
            try:
                [position] = self._consumer.position([TopicPartition(self.topic, partition)])
            except Exception:  # noqa: BLE001 - retried on the next pass
                continue
            if position.offset >= 0:
                with self._read:
                    self._positions[partition] = max(
                        self._positions.get(partition, 0), position.offset
                    )
                    self._read.notify_all()
