"""Copies the queue into the repository, in bulk, at least once, never dropping a record.

Topics ``flows``, ``executions``, ``logs``, ``metrics``, ``workers`` and ``triggers`` are read
with the consumer group ``indexer`` (a ``triggers`` tombstone removes the trigger's state; the
users' requests on ``triggers``, keys ``request:...``, are skipped: the scheduler's answer, a new
state, is what gets indexed).
Records are accumulated into one bulk until it holds ``batch_size`` records or its first record
waited ``linger`` seconds, whichever comes first; the bulk is decoded, written, and only then are
its offsets committed. A failed write is retried with exponential backoff (the bulk stays in
hand, offsets uncommitted, the partitions paused while the member keeps polling so it stays in
its group) until it succeeds or the indexer stops. A record that cannot be decoded is logged and
skipped: it can never become valid, and holding the stream for it would stall every other record.

Metrics: ``lanner_indexer_records`` (written, by topic), ``lanner_indexer_lag_records`` (by
topic: records on the topics not yet written, on Kafka), ``lanner_indexer_bulk_records`` and
``lanner_indexer_bulk_seconds`` (size and duration of each successful bulk, commit included),
``lanner_indexer_retries`` (failed bulk writes, each retried), ``lanner_indexer_skipped_records``.

Nothing moves backwards: an execution snapshot is written only over one of a lower or equal
``sequence`` (the repository checks it), and a flow event only when its revision is not older
than the stored one (a webserver stores its flows itself, before announcing them: the event
that comes back later must not bring an older source back).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import yaml
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, ValidationError

from common.models.execution import Execution, ExecutionHead
from common.models.messages import LogEntry, MetricEntry, WorkerHeartbeat
from common.models.trigger import TriggerState, is_request_key
from common.queue.base import (
    EXECUTIONS,
    FLOWS,
    LOGS,
    METRICS,
    TRIGGERS,
    WORKERS,
    Queue,
    Record,
    Subscription,
    TopicPartition,
)
from common.repository.base import FlowRecord, Repositories

log = logging.getLogger("lanner.indexer")

GROUP = "indexer"
TOPICS = (FLOWS, EXECUTIONS, LOGS, METRICS, WORKERS, TRIGGERS)

RECORDS = Counter(
    "lanner_indexer_records",
    "Records written to the repository (offsets committed), by topic.",
    ["topic"],
)
SKIPPED = Counter("lanner_indexer_skipped_records", "Undecodable records skipped.")
FAILURES = Counter(
    "lanner_indexer_write_failures", "Bulk writes that failed (retried, offsets uncommitted)."
)
RETRIES = Counter(
    "lanner_indexer_retries", "Bulk writes retried after a failure (the repository unavailable)."
)
LAG = Gauge(
    "lanner_indexer_lag_records",
    "Records on the topic not yet written to the repository (Kafka; read every few seconds).",
    ["topic"],
)
BULK_RECORDS = Histogram(
    "lanner_indexer_bulk_records",
    "Records per successful bulk write.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
BULK_SECONDS = Histogram(
    "lanner_indexer_bulk_seconds",
    "Duration of a successful bulk write and its commit, in seconds.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LAG_INTERVAL = 2.0  # seconds between two readings of the lag


class _FlowEvent(BaseModel):
    """What ``common.flow.store.flow_event`` puts on ``flows``."""

    tenant: str
    namespace: str
    id: str
    revision: int
    source: str = ""
    deleted: bool = False


@dataclass
class Batch:
    """A poll's records decoded per entity; executions keep only the newest snapshot per id."""

    executions: dict[str, Execution] = field(default_factory=dict)
    logs: list[LogEntry] = field(default_factory=list)
    metrics: list[MetricEntry] = field(default_factory=list)
    workers: dict[str, WorkerHeartbeat] = field(default_factory=dict)
    # the last record of each trigger uid in the batch: its state, or None (tombstone: gone)
    triggers: dict[str, TriggerState | None] = field(default_factory=dict)
    # flow events in their order (few, and each checked against the stored revision);
    # None is a tombstone (deleted)
    flows: list[tuple[str, _FlowEvent | None]] = field(default_factory=list)
    # with ``finish(full=False)``: (indexed fields, JSON) of the newest snapshot per execution
    snapshots: list[tuple[ExecutionHead, bytes]] = field(default_factory=list)
    skipped: int = 0
    # newest snapshot per execution id, decoded in full only by ``finish``: a busy execution
    # has several snapshots per batch and decoding each whole was a third of the indexer's time
    _newest: dict[str, tuple[int, Record]] = field(default_factory=dict)

    def add(self, record: Record) -> None:
        if record.topic == TRIGGERS and is_request_key(record.key):
            return  # a user's request to the scheduler, not a state: its result comes later
        if record.topic == TRIGGERS and record.key is not None and record.value is None:
            self.triggers[record.key] = None  # the trigger went away with its flow
            return
        if record.value is None:
            if record.topic == FLOWS and record.key:
                self.flows.append((record.key, None))
            return  # other tombstones: nothing to index
        try:
            if record.topic == FLOWS:
                self.flows.append((record.key or "", _FlowEvent.model_validate_json(record.value)))
            elif record.topic == EXECUTIONS:
                head = _ExecutionHead.model_validate_json(record.value)
                known = self._newest.get(head.id)
                if known is None or head.sequence >= known[0]:
                    self._newest[head.id] = (head.sequence, record)
            elif record.topic == LOGS:
                self.logs.append(LogEntry.model_validate_json(record.value))
            elif record.topic == METRICS:
                self.metrics.append(MetricEntry.model_validate_json(record.value))
            elif record.topic == WORKERS:
                heartbeat = WorkerHeartbeat.model_validate_json(record.value)
                known_beat = self.workers.get(heartbeat.worker_id)
                if known_beat is None or heartbeat.date >= known_beat.date:
                    self.workers[heartbeat.worker_id] = heartbeat
            elif record.topic == TRIGGERS:
                state = TriggerState.model_validate_json(record.value)
                self.triggers.pop(state.uid, None)  # keep the batch's order of uids
                self.triggers[state.uid] = state
        except (ValidationError, ValueError) as exc:
            self._skip(record, exc)

    def finish(self, *, full: bool = True) -> None:
        """Decode the newest snapshot of each execution (call once every record was added):
        in full, or (``full=False``) only its indexed fields, its JSON kept in ``snapshots``."""
        for _, record in self._newest.values():
            assert record.value is not None
            try:
                if full:
                    execution = Execution.model_validate_json(record.value)
                    self.executions[execution.id] = execution
                else:
                    head = ExecutionHead.model_validate_json(record.value)
                    self.snapshots.append((head, record.value))
            except (ValidationError, ValueError) as exc:
                self._skip(record, exc)
        self._newest.clear()

    def _skip(self, record: Record, exc: Exception) -> None:
        self.skipped += 1
        log.warning(
            "indexer: skipping an undecodable record on %s at offset %s (key %s): %s",
            record.topic,
            record.offset,
            record.key,
            str(exc).splitlines()[0],
        )


class _ExecutionHead(BaseModel):
    id: str
    sequence: int = 0


def _write_flow(repositories: Repositories, key: str, event: _FlowEvent | None) -> None:
    flows = repositories.flows
    if event is None:
        tenant, _, rest = key.partition("/")
        namespace, _, flow_id = rest.rpartition("/")
        if tenant and namespace and flow_id and flows.get(tenant, namespace, flow_id):
            flows.delete(tenant, namespace, flow_id)
        return
    latest = flows.revisions(event.tenant, event.namespace, event.id)
    newest = latest[-1] if latest else None
    if newest is not None and newest.revision > event.revision:
        return  # stale: a newer revision is stored already
    if event.deleted:
        if newest is not None and not newest.deleted:
            flows.delete(event.tenant, event.namespace, event.id)
        return
    if newest is not None and newest.revision == event.revision and not newest.deleted:
        return  # stored already (by the webserver that announced it, or a previous batch)
    try:
        disabled = bool((yaml.safe_load(event.source) or {}).get("disabled", False))
    except (yaml.YAMLError, AttributeError):
        disabled = False
    flows.save(
        FlowRecord(
            tenant_id=event.tenant,
            namespace=event.namespace,
            id=event.id,
            revision=event.revision,
            source=event.source,
            updated=datetime.now(UTC),
            disabled=disabled,
        )
    )


def write_batch(
    repositories: Repositories, batch: Batch, pool: ThreadPoolExecutor | None = None
) -> None:
    """Write every entity of the batch; idempotent, so a retried batch is harmless.

    Flows first; then executions, logs, metrics, workers and triggers, which are independent of
    each other: with ``pool`` their requests run at once (on Elasticsearch one bulk's time is
    then its slowest request's, not the sum of them)."""
    for key, event in batch.flows:
        _write_flow(repositories, key, event)
    jobs: list[Callable[[], object]] = []
    if batch.snapshots:
        jobs.append(lambda: repositories.executions.save_json_many(batch.snapshots))  # type: ignore[attr-defined]
    executions = list(batch.executions.values())
    if executions:
        jobs.append(lambda: _save_executions(repositories, executions))
    if batch.logs:
        jobs.append(lambda: repositories.logs.save_many(batch.logs))
    if batch.metrics:
        jobs.append(lambda: repositories.metrics.save_many(batch.metrics))
    if batch.workers:
        jobs.append(lambda: [repositories.workers.save(h) for h in batch.workers.values()])
    if batch.triggers:
        jobs.append(lambda: _save_triggers(repositories, batch))
    if pool is None or len(jobs) < 2:
        for job in jobs:
            job()
        return
    futures = [pool.submit(job) for job in jobs]
    for future in futures:
        future.result()  # the first failure is raised (after every request ended)


def _save_executions(repositories: Repositories, executions: list[Execution]) -> None:
    save_many = getattr(repositories.executions, "save_many", None)
    if save_many is not None:
        save_many(executions)
    else:
        for execution in executions:
            repositories.executions.save(execution)


def _save_triggers(repositories: Repositories, batch: Batch) -> None:
    gone = [uid for uid, state in batch.triggers.items() if state is None]
    if gone:
        repositories.triggers.delete_many(gone)
    states = [state for state in batch.triggers.values() if state is not None]
    if states:
        repositories.triggers.save_many(states)


class Indexer:
    """A thread copying the queue into the repository.

    Args:
        queue: where the components publish.
        repositories: where the webserver reads.
        batch_size: most records in one bulk write.
        linger: longest wait, in seconds, of a record for the bulk to fill before it is written.
        max_backoff: longest wait between retries of a failed write, in seconds.
        parallel_writes: write the entities of a bulk at once (Elasticsearch: one request
            each); sequentially otherwise (SQLite: one writer anyway).
    """

    def __init__(
        self,
        queue: Queue,
        repositories: Repositories,
        *,
        batch_size: int = 1000,
        linger: float = 0.1,
        poll_timeout: float = 1.0,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        group: str = GROUP,
        parallel_writes: bool = False,
    ) -> None:
        self.queue = queue
        self.repositories = repositories
        self.batch_size = batch_size
        self.linger = linger
        self.poll_timeout = poll_timeout
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.group = group
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.indexed = 0
        self.skipped = 0
        self.failures = 0
        self.bulks = 0
        self.parallel_writes = parallel_writes
        self._pool: ThreadPoolExecutor | None = None
        self._carried: list[Record] = []  # read while a failed bulk waited: the next bulk's
        self._lag_read_at = 0.0
        # partitions this member holds now; ``assigned`` is set on its first assignment
        self.held: set[TopicPartition] = set()
        self.assigned = threading.Event()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="lanner-indexer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """The loop of the thread; also callable directly (returns once ``stop`` is called)."""
        subscription = self.queue.subscribe(
            list(TOPICS), self.group, on_assigned=self._on_assigned, on_revoked=self._on_revoked
        )
        if self.parallel_writes:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lanner-indexer-w")
        pending: list[Record] = []
        first_at = 0.0  # when the first record of ``pending`` was read
        try:
            while not self._stop.is_set():
                if len(pending) < self.batch_size:
                    wait = self.poll_timeout  # bounded: ``stop`` is noticed between polls
                    if pending:
                        wait = min(wait, max(0.0, first_at + self.linger - time.monotonic()))
                    records = subscription.poll(self.batch_size - len(pending), wait)
                    if records:
                        if not pending:
                            first_at = time.monotonic()
                        pending.extend(records)
                full = len(pending) >= self.batch_size
                if pending and (full or time.monotonic() - first_at >= self.linger):
                    self._index(subscription, pending)
                    pending, self._carried = self._carried, []
                    first_at = time.monotonic()
                self._read_lag(subscription, pending)
        except Exception:  # pragma: no cover - the queue itself failed
            log.exception("indexer: the queue failed; the indexer stops")
        finally:
            subscription.close()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _on_assigned(self, partitions: list[TopicPartition]) -> None:
        self.held.update(partitions)
        self.assigned.set()
        log.info("indexer: assigned %s; holds %s", describe(partitions), describe(self.held))

    def _on_revoked(self, partitions: list[TopicPartition]) -> None:
        self.held.difference_update(partitions)
        log.info("indexer: revoked %s; holds %s", describe(partitions), describe(self.held))

    def _wait_polling(
        self, subscription: Subscription, records: Sequence[Record], seconds: float
    ) -> bool:
        """Waits ``seconds`` polling the paused subscription; True when the indexer stops.
        Records of a partition assigned meanwhile (not paused yet) are kept for later."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            arrived = subscription.poll(self.batch_size, min(remaining, self.poll_timeout))
            if arrived:
                self._carried.extend(arrived)
                subscription.pause()
            self._read_lag(subscription, [*records, *self._carried])
        return True

    def _read_lag(self, subscription: Subscription, pending: Sequence[Record]) -> None:
        """Sets the lag gauge every ``LAG_INTERVAL`` seconds, where the queue can tell it."""
        lag_of = getattr(subscription, "lag", None)
        now = time.monotonic()
        if lag_of is None or now - self._lag_read_at < LAG_INTERVAL:
            return
        self._lag_read_at = now
        try:
            per_partition = lag_of()
        except Exception as exc:  # noqa: BLE001 - a metric: read again next time
            log.debug("indexer: lag not read: %s", exc)
            return
        # records read but not written yet are on the topic, not in the repository
        by_topic: Tally[str] = Tally(r.topic for r in pending)
        for tp, lag in per_partition.items():
            by_topic[tp.topic] += lag
        for topic in TOPICS:
            LAG.labels(topic).set(by_topic.get(topic, 0))

    def _index(self, subscription: Subscription, records: Sequence[Record]) -> None:
        batch = Batch()
        for record in records:
            batch.add(record)
        batch.finish(full=not hasattr(self.repositories.executions, "save_json_many"))
        backoff = self.initial_backoff
        paused = False
        try:
            while True:
                began = time.monotonic()
                try:
                    write_batch(self.repositories, batch, self._pool)
                    subscription.commit(records)
                    BULK_SECONDS.observe(time.monotonic() - began)
                    break
                except Exception as exc:  # noqa: BLE001 - every failure is retried, none dropped
                    self.failures += 1
                    FAILURES.inc()
                    RETRIES.inc()
                    log.warning("indexer: bulk write failed (%s); retrying in %.1fs", exc, backoff)
                    if not paused:
                        # nothing more is read meanwhile, but polling keeps the member in its
                        # group however long the repository is away
                        subscription.pause()
                        paused = True
                    if self._wait_polling(subscription, records, backoff):
                        return  # stopping: the batch stays uncommitted and is read again later
                    backoff = min(backoff * 2, self.max_backoff)
        finally:
            if paused:
                subscription.resume()
        self.bulks += 1
        BULK_RECORDS.observe(len(records))
        self.indexed += len(records) - batch.skipped
        self.skipped += batch.skipped
        SKIPPED.inc(batch.skipped)
        for topic in TOPICS:
            count = sum(1 for r in records if r.topic == topic)
            if count:
                RECORDS.labels(topic).inc(count)


def describe(partitions: set[TopicPartition] | list[TopicPartition]) -> str:
    """``executions[0,1] logs[0,1]``, or ``none``."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    if not by_topic:
        return "none"
    return " ".join(
        f"{topic}[{','.join(str(p) for p in sorted(parts))}]"
        for topic, parts in sorted(by_topic.items())
    )
