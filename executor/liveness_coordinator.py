"""The liveness coordinator of the Kafka executor: hands the jobs of dead workers back.

Every executor instance reads all of ``workers`` (heartbeats) and ``worker-jobs`` (who runs
which attempt) with a consumer of its own, and times each heartbeat on its own clock when it
arrives (``executor.liveness``). The instance that holds partition 0 of ``workers`` in the
``executor-liveness`` group is the coordinator: it alone turns the jobs of workers silent past
``worker_dead_after`` into ``WorkerDied`` inputs. Every instance keeps its view warm, so a new
coordinator acts at once; two coordinators for a moment send the same input ids, applied once.
A worker never heard from (its first job seen, no heartbeat) counts from the moment its job
was seen.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from pydantic import ValidationError

from common.models.messages import WorkerHeartbeat, WorkerJob
from common.queue import base as topics
from common.queue.base import Queue
from common.queue.kafka_client import create_consumer

from . import liveness
from .metrics import EXECUTOR_METRICS

log = logging.getLogger("lanner.executor")


class LivenessCoordinator:
    def __init__(
        self,
        queue: Queue,
        bootstrap_servers: str,
        prefix: str,
        dead_after: float,
        instance_id: str,
    ) -> None:
        self.queue = queue
        self.bootstrap_servers = bootstrap_servers
        self.prefix = prefix
        self.dead_after = timedelta(seconds=dead_after)
        self.instance_id = instance_id
        self.state = liveness.Liveness()
        self.leader = False
        # end offsets of the workers partitions at start: the view of which workers live is
        # trusted only once the reader has reached them
        self._catch_up: dict[int, int] = {}
        self._live_groups: frozenset[str | None] = frozenset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._reader = create_consumer(
            self.bootstrap_servers, f"lanner-liveness-reader-{uuid.uuid4().hex}"
        )
        assigned = []
        for logical in (topics.WORKERS, topics.WORKER_JOBS):
            name = self.prefix + logical
            metadata = self._reader.list_topics(name, timeout=30).topics[name]
            assigned += [TopicPartition(name, p, OFFSET_BEGINNING) for p in metadata.partitions]
            if logical == topics.WORKERS:
                for p in metadata.partitions:
                    low, high = self._reader.get_watermark_offsets(
                        TopicPartition(name, p), timeout=30
                    )
                    if high > low:
                        self._catch_up[p] = high
        self._reader.assign(assigned)
        self._election = self.queue.subscribe(
            [topics.WORKERS], "executor-liveness", instance_id=None
        )
        self._thread = threading.Thread(target=self._run, name="lanner-liveness", daemon=True)
        self._thread.start()

    def group_alive(self, group: str | None) -> bool | None:
        """Whether a live worker serves ``group``; None while the view is still catching up."""
        if self._catch_up:
            return None
        return group in self._live_groups

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
            self._election.close()
            self._reader.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._read()
                # computed here, once a pass, not for every task the executor sends
                now = datetime.now(UTC)
                self._live_groups = frozenset(
                    liveness.live_groups(self.state, now, self.dead_after)
                )
                self._election.poll(100, timeout=0)  # stays in the group; records unused
                self.leader = any(
                    tp.topic == topics.WORKERS and tp.partition == 0
                    for tp in self._election.assignment()
                )
                if self.leader:
                    self._hand_back()
            except Exception:  # noqa: BLE001 - retried on the next pass
                log.exception("liveness coordinator pass failed; retrying")
                self._stop.wait(1.0)

    def _read(self) -> None:
        messages = self._reader.consume(500, 0.5)
        received_at = datetime.now(UTC)
        for message in messages:
            if message.error() is not None or message.key() is None:
                continue
            topic = message.topic().removeprefix(self.prefix)
            try:
                if topic == topics.WORKERS:
                    if message.value() is not None:
                        beat = WorkerHeartbeat.model_validate_json(message.value())
                        liveness.on_heartbeat(self.state, beat, received_at)
                else:
                    value = message.value()
                    job = WorkerJob.model_validate_json(value) if value is not None else None
                    held = liveness.on_job(self.state, message.key().decode(), job)
                    if held is not None and held.worker_id not in self.state.workers:
                        self.state.workers[held.worker_id] = liveness.WorkerSeen(
                            last_seen=received_at
                        )
            except ValidationError as exc:
                log.error("undecodable record on %s dropped: %s", topic, exc)

        if self._catch_up:
            name = self.prefix + topics.WORKERS
            reached = self._reader.position([TopicPartition(name, p) for p in self._catch_up])
            for tp in reached:
                if tp.offset >= self._catch_up[tp.partition]:
                    del self._catch_up[tp.partition]

    def _hand_back(self) -> None:
        lost = liveness.lost_jobs(self.state, datetime.now(UTC), self.dead_after)
        if not lost:
            return
        for job in lost:
            log.warning(
                "task run %s lost with worker %s (no heartbeat for %s): resubmitting",
                job.task_run_id,
                job.worker_id,
                self.dead_after,
            )
        self.queue.emit_many(
            [(topics.EXECUTOR, d.execution_id, d.to_json()) for d in liveness.worker_died(lost)]
        )
        liveness.forget(self.state, lost)
        EXECUTOR_METRICS.resubmitted.inc(len(lost))
