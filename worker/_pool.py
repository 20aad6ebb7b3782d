"""The task runner pool: polls worker tasks, runs them on threads, reports their results.

Per worker task: deduplicate on ``job_id`` → claim it in one ``produce_and_commit``: the
``WorkerJob`` record (``worker-jobs``), a RUNNING ``TaskResult`` (``executor``) and the offset
→ run the task in the pool → emit the final ``TaskResult`` and the ``worker-jobs`` tombstone
together. The dispatcher polls only as many records as there are free threads, and a full pool
polls paused, so a busy worker never holds tasks it cannot start and stays in its group.

Kill orders are read by every worker (a consumer group of its own). With ``kill_history``
(``lanner server worker``) each start reads ``kills`` from its oldest record, in a group of
that start alone that never commits, and takes no task before it has read back a marker it
wrote there itself: a kill published before the worker started (or restarted, the same id
forgets what it knew) is known when its task arrives. A kill that arrives before its task is
remembered (``KillOrder.sequence``). Without it (the embedded server, whose worker starts with
its executor) the worker reads the kills published from its start on.

``stop()`` drains for ``drain_timeout`` seconds, then hands back what still runs: the task is
stopped and, instead of a result, a ``WorkerDied`` input (the one the liveness coordinator
would send for this attempt, same id) and the ``worker-jobs`` tombstone go out together, so the
executor resubmits the task run as a new attempt at once, without waiting for
``worker_dead_after``.

With ``cut_off_after`` set (``lanner server worker``), a worker whose heartbeats the queue has
not accepted for that long kills its tasks, reports nothing (the coordinator has handed them
back already) and fails: ``failed`` is set and ``failure`` says why.

A task's ``run`` executes on its own daemon thread, watched by the pool thread, so a kill order
or a timeout is answered even by a task that never looks at its kill flag: the kill flag is set
(Sleep wakes, the subprocess group is killed) and, if ``run`` has not returned ``kill_grace``
seconds later, it is abandoned and the result is reported anyway.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from common.errors import LannerError, RecordsReturnedError
from common.flow.durations import format_iso_duration
from common.ids import new_id
from common.models.messages import (
    KillOrder,
    TaskResult,
    WorkerDied,
    WorkerJob,
    WorkerTask,
    WorkerTaskResult,
)
from common.models.state import State
from common.plugins.base import RunnableTask
from common.plugins.dynamic import resolve
from common.plugins.registry import registry
from common.queue.base import (
    EXECUTOR,
    KILLS,
    WORKER_JOBS,
    Outgoing,
    Queue,
    Record,
    TopicPartition,
    worker_tasks_topic,
)
from common.repository.base import Repositories
from common.secrets import SecretBox
from common.settings import Settings
from common.storage.base import Storage

from ._context import LOG_FLUSH_SECONDS, TaskRunContext
from ._heartbeat import Heartbeat
from ._metrics import WORKER_METRICS
from ._outputs import json_safe, offload
from ._triggers import TriggerEvaluator
from ._working_dir import WorkingDirectoryRun, is_working_directory

log = logging.getLogger("lanner.worker")
_REMEMBERED = 10_000


@dataclass
class WorkerConfig:
    """How a worker runs.

    Attributes:
        threads: tasks run at once (0: 8 × CPU cores).
        group: worker group (``workerGroup.key``); None is the default group.
        tenant: tenant of storage URIs when a worker task carries none.
        heartbeat_interval: seconds between heartbeats.
        max_output_bytes: outputs over this JSON size are moved to internal storage.
        drain_timeout: on ``stop()``, seconds to let running tasks finish before killing them.
        kill_grace: seconds between SIGTERM and SIGKILL, and given to a killed task to return.
        poll_timeout: seconds a poll waits for records (bounds the reaction to ``stop()``).
        worker_id: defaults to a random id.
        cut_off_after: seconds without an accepted heartbeat after which the worker kills its
            tasks and fails (None: never; the embedded server's queue is a local file).
        kill_history: read every retained kill order at start (see the module docstring).
        triggers: also evaluate the polling triggers of the group (``worker._triggers``).
        trigger_threads: polling triggers evaluated at once.
    """

    threads: int = 0
    group: str | None = None
    tenant: str = "main"
    heartbeat_interval: float = 2.0
    max_output_bytes: int = 256 * 1024
    drain_timeout: float = 30.0
    kill_grace: float = 5.0
    poll_timeout: float = 0.5
    worker_id: str | None = None
    encryption_key: str | None = None
    cut_off_after: float | None = None
    kill_history: bool = False
    uri_scheme: str = "lanner"
    triggers: bool = True
    trigger_threads: int = 4

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        return cls(
            threads=settings.worker_threads,
            group=settings.worker_group,
            tenant=settings.tenant,
            heartbeat_interval=settings.heartbeat_interval_seconds,
            max_output_bytes=settings.max_output_bytes,
            encryption_key=settings.encryption_key,
            worker_id=settings.worker_id,
            drain_timeout=settings.worker_drain_timeout_seconds,
            uri_scheme=settings.storage_uri_scheme,
        )


@dataclass
class _Job:
    task: WorkerTask
    kill: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None  # "kill" | "timeout" | "shutdown" | "cut-off"
    claimed: float = field(default_factory=time.monotonic)
    record: Record | None = None
    claim: list[Outgoing] = field(default_factory=list)
    claimed_at: datetime | None = None
    # a WorkingDirectory's own timeout bounds its tasks: (monotonic deadline, that timeout)
    deadline: tuple[float, timedelta] | None = None

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.kill.set()
        self.wake.set()


def _now() -> datetime:
    return datetime.now(UTC)


class Worker:
    """Runs the runnable tasks of one worker group. ``start()``, then ``stop()``."""

    def __init__(
        self,
        queue: Queue,
        storage: Storage,
        config: WorkerConfig | Settings | None = None,
        *,
        repositories: Repositories | Callable[[], Repositories] | None = None,
    ) -> None:
        """``repositories`` (or a function that opens them on first use): what the tasks that
        read or purge execution history use; without it those tasks fail."""
        self._repositories = repositories
        self._repositories_lock = threading.Lock()
        if isinstance(config, Settings):
            config = WorkerConfig.from_settings(config)
        self.config = config or WorkerConfig()
        self.queue = queue
        self.storage = storage
        self.threads = self.config.threads or 8 * (os.cpu_count() or 1)
        self.id = self.config.worker_id or new_id()
        self.secret_box = (
            SecretBox(self.config.encryption_key) if self.config.encryption_key else None
        )
        self._cond = threading.Condition()
        self._running: dict[str, _Job] = {}
        self._held: set[TopicPartition] = set()  # task partitions this worker is assigned
        self._done: OrderedDict[str, None] = OrderedDict()
        # execution id -> sequence of its latest kill order (see KillOrder)
        self._kills: OrderedDict[str, int] = OrderedDict()
        self._kills_ready = threading.Event()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self.failed = threading.Event()
        self.failure: str | None = None
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lanner-worker")
        self._heartbeat = Heartbeat(
            queue,
            worker_id=self.id,
            group=self.config.group,
            threads=self.threads,
            interval=self.config.heartbeat_interval,
            running=self.running_count,
            cut_off_after=self.config.cut_off_after,
            on_cut_off=self._cut_off,
        )
        self._threads: list[threading.Thread] = []
        self.triggers = (
            TriggerEvaluator(
                queue,
                storage,
                worker_id=self.id,
                group=self.config.group,
                threads=self.config.trigger_threads,
                poll_timeout=self.config.poll_timeout,
            )
            if self.config.triggers
            else None
        )
        self._started = False
        self._claiming_since: float | None = None

    @property
    def task_topic(self) -> str:
        return worker_tasks_topic(self.config.group)

    @property
    def consumer_group(self) -> str:
        return f"worker.{self.config.group}" if self.config.group else "worker"

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        # every worker reads every kill order: a group of its own
        if self.config.kill_history:
            self._kill_sub = self.queue.subscribe([KILLS], f"worker-kills.{self.id}.{new_id()}")
        else:
            self._kill_sub = self.queue.subscribe(
                [KILLS], f"worker-kills.{self.id}", from_latest=True
            )
        self._task_sub = self.queue.subscribe(
            [self.task_topic],
            self.consumer_group,
            instance_id=self.id,
            on_assigned=self._on_assigned,
            on_revoked=self._on_revoked,
        )
        self._heartbeat.start()
        if self.triggers is not None:
            self.triggers.start()
        WORKER_METRICS.threads.inc(self.threads)
        targets = [(self._listen_kills, "kills"), (self._dispatch, "dispatcher")]
        if self.config.cut_off_after is not None:
            targets.append((self._watch_heartbeats, "watchdog"))
        for target, name in targets:
            thread = threading.Thread(target=target, name=f"lanner-worker-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, drain_timeout: float | None = None) -> None:
        """Stop taking tasks; let running ones finish for ``drain_timeout`` seconds, then hand
        back the others (stopped, and a ``WorkerDied`` sent in place of their result); end
        with a TERMINATING heartbeat."""
        if not self._started or self._closed.is_set():
            return
        self._heartbeat.status = "TERMINATING"
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._join(self._threads[1])  # the dispatcher: no task is taken from here on
        if self.triggers is not None:
            self.triggers.stop()
        deadline = time.monotonic() + (
            self.config.drain_timeout if drain_timeout is None else drain_timeout
        )
        with self._cond:
            while self._running and time.monotonic() < deadline and not self.failed.is_set():
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            for job in self._running.values():
                job.stop("shutdown")
        self._pool.shutdown(wait=True)
        self._closed.set()
        for thread in self._threads:
            self._join(thread)
        WORKER_METRICS.threads.dec(self.threads)
        if self.failed.is_set():
            # cut off from its queue: no goodbye, and no close that would wait for the brokers
            # (the heartbeat thread may be blocked in a send; the process exits next)
            self._heartbeat.stop(wait=False)
            return
        self._heartbeat.stop()
        try:
            self._heartbeat.beat()
        except Exception:
            log.exception("worker %s: cannot emit the last heartbeat", self.id)
        self._task_sub.close()
        self._kill_sub.close()

    def _join(self, thread: threading.Thread) -> None:
        # a failed worker may have a thread stuck in a Kafka call (a claim): it exits anyway
        while thread.is_alive():
            thread.join(1.0)
            if self.failed.is_set():
                thread.join(self.config.kill_grace)
                return

    def running_count(self) -> int:
        with self._cond:
            return len(self._running)

    def readiness(self) -> str | None:
        """None when the worker takes tasks, else why not (the management port's check)."""
        if self.failed.is_set():
            return self.failure or "failed"
        if self._stopping.is_set():
            return "stopping"
        if not self._heartbeat.published:
            return "no heartbeat accepted by the queue yet"
        silent = self._heartbeat.silent_for()
        if silent > 3 * self.config.heartbeat_interval:
            return f"the queue has not accepted a heartbeat for {silent:.0f} s"
        if not self._kills_ready.is_set():
            return "reading the kill orders published before this worker started"
        return None

    def _fail(self, reason: str) -> None:
        """Cut off: kill every task, report nothing, stop taking tasks, say why."""
        with self._cond:
            if self.failed.is_set():
                return
            self.failure = reason
            self.failed.set()
            self._stopping.set()
            for job in self._running.values():
                job.stop("cut-off")
            self._cond.notify_all()
        log.error("worker %s: %s: its tasks are killed and it stops", self.id, reason)

    def _cut_off(self, silent: float) -> None:
        self._fail(f"cut off from the queue: no heartbeat accepted for {silent:.0f} s")

    def _silent_too_long(self) -> bool:
        """True (and the worker fails) once its heartbeats stopped for ``cut_off_after``: checked
        by the watchdog, and before a claim or a result, so a worker frozen past the limit and
        then continued sends nothing (the coordinator has handed its tasks back)."""
        if self.failed.is_set():
            return True
        limit = self.config.cut_off_after
        silent = self._heartbeat.silent_for()
        if limit is None or silent <= limit:
            return False
        self._cut_off(silent)
        return True

    def _watch_heartbeats(self) -> None:
        # the heartbeat thread may be blocked in a send to unreachable brokers: watch apart
        assert self.config.cut_off_after is not None
        while not self._closed.wait(min(1.0, self.config.heartbeat_interval / 2)):
            if self._silent_too_long():
                return
            since = self._claiming_since
            if since is not None and time.monotonic() - since > self.config.cut_off_after:
                # the queue client is stuck (it happened in librdkafka's transactions): a
                # worker that heartbeats but can take no task must not hold its partitions
                self._fail(f"a claim has been stuck for {time.monotonic() - since:.0f} s")
                return

    # -------------------------------------------------------------- dispatch

    def _full(self) -> bool:
        return len(self._running) >= self.threads

    def _on_assigned(self, partitions: list[TopicPartition]) -> None:
        # called inside poll: a partition gained while the pool is full must not hand a record
        # over before the pool has room (the others stay paused meanwhile)
        log.info("worker %s: assigned %s", self.id, _describe(partitions))
        with self._cond:
            full = self._full()
            self._held.update(partitions)
            WORKER_METRICS.partitions.labels(worker=self.id).set(len(self._held))
        if full:
            self._task_sub.pause(partitions)

    def _on_revoked(self, partitions: list[TopicPartition]) -> None:
        log.info("worker %s: revoked %s", self.id, _describe(partitions))
        with self._cond:
            self._held.difference_update(partitions)
            WORKER_METRICS.partitions.labels(worker=self.id).set(len(self._held))

    def _dispatch(self) -> None:
        while not self._kills_ready.is_set():  # never start a task whose kill is unread
            if self._stopping.wait(0.1):
                return
        while not self._stopping.is_set():
            with self._cond:
                if self._full():
                    self._cond.wait(self.config.poll_timeout)
                free = self.threads - len(self._running)
            if self._stopping.is_set():
                return
            try:
                if free <= 0:
                    # a full pool keeps polling, paused: it stays in its group without taking
                    # tasks it cannot start (they go to the other workers)
                    self._task_sub.pause()
                    records = self._task_sub.poll(max_records=1, timeout=0)
                else:
                    self._task_sub.resume()
                    records = self._task_sub.poll(
                        max_records=free, timeout=self.config.poll_timeout
                    )
                self._accept(records)
            except Exception:
                log.exception("worker %s: dispatch failed", self.id)
                self._stopping.wait(1.0)

    def _accept(self, records: list[Record]) -> None:
        """Claims every task of a poll in one transaction (a transaction costs several round
        trips to the brokers: one per poll, not one per task), then starts them."""
        if not records:
            return
        taken = [job for job in map(self._prepare, records) if job is not None]
        if not taken:
            self._task_sub.commit(records)
            return
        claimed = [] if self._silent_too_long() else self._claim(taken, records)
        started = {id(job) for job in claimed}
        with self._cond:
            for job in taken:
                if id(job) not in started:
                    self._running.pop(job.task.job_id, None)
            self._cond.notify_all()
        for job in claimed:
            self._start(job)

    def _prepare(self, record: Record) -> _Job | None:
        """The job of a polled record, with its claim; None for what is not to run."""
        if record.value is None:
            return None
        try:
            task = WorkerTask.model_validate_json(record.value)
        except ValidationError as exc:
            log.error("worker %s: undecodable worker task at %s: %s", self.id, record.offset, exc)
            return None
        job = _Job(task, record=record)
        with self._cond:
            duplicate = task.job_id in self._running or task.job_id in self._done
            if not duplicate:
                self._running[task.job_id] = job
        if duplicate:
            log.info("worker %s: skipping duplicate job %s", self.id, task.job_id)
            return None
        run = task.task_run
        now = _now()
        job_record = WorkerJob(
            task_run_id=run.id,
            execution_id=run.execution_id,
            attempt=task.attempt,
            worker_id=self.id,
            date=now,
        )
        job.claim = [
            (WORKER_JOBS, run.id, job_record.to_json()),
            (EXECUTOR, run.execution_id, self._result(task, State.RUNNING, now=now)),
        ]
        job.claimed_at = now
        return job

    def _start(self, job: _Job) -> None:
        task = job.task
        run = task.task_run
        now = job.claimed_at or _now()
        job.claimed = time.monotonic()
        type_name = _type_name(task)
        WORKER_METRICS.task_runs.labels(type_name, State.RUNNING.value).inc()
        if run.state.histories:
            queued = (now - run.state.histories[-1].date).total_seconds()
            WORKER_METRICS.queued.observe(max(0.0, queued))
        WORKER_METRICS.running.inc()
        WORKER_METRICS.pending.inc()
        with self._cond:  # a kill order may have arrived before the task did
            killed = self._kills.get(run.execution_id)
        if killed is not None and task.sequence <= killed:
            job.stop("kill")
        self._pool.submit(self._execute, job)

    def _claim(self, jobs: list[_Job], records: list[Record]) -> list[_Job]:
        """The claims of ``jobs`` and the offsets of ``records`` in one transaction, so a crash
        never leaves half of it; returns the jobs claimed. The records were polled, so this
        member will not see them again: retry until the claims are written, their partitions
        went to another member (which reads them again) or the worker stops."""
        while True:
            try:
                self._claiming_since = time.monotonic()
                try:
                    claims = [item for job in jobs for item in job.claim]
                    self._task_sub.produce_and_commit(claims, records)
                finally:
                    self._claiming_since = None
                return jobs
            except RecordsReturnedError as exc:
                # a rebalance to serve first: the next poll does, then reads them again
                log.warning("worker %s: claim refused, tasks read again: %s", self.id, exc)
                return []
            except Exception as exc:
                if "can no longer be used" in str(exc):
                    # fenced: a newer incarnation of this worker id took over
                    self._fail(f"fenced by another instance with worker id {self.id}: {exc}")
                    return []
                held = set(self._task_sub.assignment())
                moved = [r for r in records if r.topic_partition not in held]
                if moved:
                    log.warning(
                        "worker %s: %d task(s) moved to another worker", self.id, len(moved)
                    )
                    records = [r for r in records if r.topic_partition in held]
                    jobs = [j for j in jobs if j.record is not None and j.record in records]
                    if not records:
                        return []
                log.warning("worker %s: claim failed, retrying: %s", self.id, exc)
            if self._stopping.wait(1.0):
                return []

    def _result(
        self,
        task: WorkerTask,
        state: State,
        outputs: Mapping[str, Any] | None = None,
        error: str | None = None,
        *,
        now: datetime | None = None,
    ) -> bytes:
        result = WorkerTaskResult(
            execution_id=task.task_run.execution_id,
            task_run_id=task.task_run.id,
            attempt=task.attempt,
            state=state,
            outputs=dict(outputs) if outputs is not None else None,
            error=error,
            worker_id=self.id,
            date=now or _now(),
        )
        message = TaskResult(id=result.input_id, execution_id=result.execution_id, result=result)
        return message.to_json()

    def _hand_back(self, task: WorkerTask) -> bytes:
        """In place of a result: the attempt is lost, resubmit it (the liveness coordinator's
        message for a dead worker's job, with the same id, so two hand-backs apply once)."""
        run = task.task_run
        died = WorkerDied(
            id=f"worker-died:{run.id}:{task.attempt}",
            execution_id=run.execution_id,
            task_run_id=run.id,
            attempt=task.attempt,
            worker_id=self.id,
        )
        return died.to_json()

    def _finish(self, job: _Job) -> None:
        with self._cond:
            self._running.pop(job.task.job_id, None)
            self._done[job.task.job_id] = None
            while len(self._done) > _REMEMBERED:
                self._done.popitem(last=False)
            self._cond.notify_all()
        WORKER_METRICS.running.dec()

    # -------------------------------------------------------------- kills

    def _listen_kills(self) -> None:
        markers = _StartMarkers(f"worker-started:{self.id}:{new_id()}")
        while not self._closed.is_set():
            try:
                if not self._kills_ready.is_set() and not markers.pending:
                    # (again) a batch of markers of this start: once one is read back on every
                    # partition of `kills`, every kill order published before is known
                    self.queue.emit_many(
                        [(KILLS, key, None) for key in markers.batch(self.queue.partitions(KILLS))]
                    )
                records = self._kill_sub.poll(max_records=500, timeout=self.config.poll_timeout)
                for record in records:
                    if record.value is not None:
                        self._apply_kill(KillOrder.model_validate_json(record.value))
                    elif markers.read(record) and not self._kills_ready.is_set():
                        log.info("worker %s: kill orders read up to its start", self.id)
                        self._kills_ready.set()
                if not self.config.kill_history:
                    self._kill_sub.commit(records)  # (a group of one start: nothing to resume)
            except Exception:
                log.exception("worker %s: kill handling failed", self.id)
                self._closed.wait(1.0)

    def _apply_kill(self, order: KillOrder) -> None:
        log.info(
            "worker %s: kill order for execution %s%s (sequence %d)",
            self.id,
            order.execution_id,
            f", task run {order.task_run_id}" if order.task_run_id else "",
            order.sequence,
        )
        with self._cond:
            if order.task_run_id is None:
                known = self._kills.get(order.execution_id, order.sequence)
                self._kills[order.execution_id] = max(known, order.sequence)
                while len(self._kills) > _REMEMBERED:
                    self._kills.popitem(last=False)
            for job in self._running.values():
                run = job.task.task_run
                if run.execution_id != order.execution_id or job.task.sequence > order.sequence:
                    continue  # another execution, or a task submitted after this kill
                if order.task_run_id in (None, run.id, run.parent_task_run_id):
                    job.stop("kill")

    def _open_repositories(self) -> Repositories:
        """The repositories, opened once by the first task that asks (one client per worker)."""
        with self._repositories_lock:
            if callable(self._repositories):
                self._repositories = self._repositories()
            assert self._repositories is not None
            return self._repositories

    # -------------------------------------------------------------- one attempt

    def _execute(self, job: _Job) -> None:
        task = job.task
        run = task.task_run
        WORKER_METRICS.pending.dec()
        min_level = task.task.get("logLevel") if isinstance(task.task, dict) else None
        ctx = TaskRunContext(
            task,
            queue=self.queue,
            storage=self.storage,
            tenant=self.config.tenant,
            kill_event=job.kill,
            min_level=min_level if isinstance(min_level, str) else None,
            kill_grace=self.config.kill_grace,
            secret_box=self.secret_box,
            buffer_logs=True,
            on_buffered=job.wake.set,
            uri_scheme=self.config.uri_scheme,
            repositories=self._open_repositories if self._repositories is not None else None,
        )
        try:
            state, outputs, error = self._attempt(job, ctx)
        except Exception as exc:  # a bug of the worker itself: still report the attempt
            log.exception("worker %s: attempt %s crashed", self.id, task.job_id)
            state, outputs, error = State.FAILED, None, f"{type(exc).__name__}: {exc}"
        finally:
            ctx.cleanup()
        try:
            if self._silent_too_long() or job.reason == "cut-off":
                log.warning("worker %s: attempt %s killed, not reported", self.id, task.job_id)
                return
            records = ctx.take_logs()  # the buffered lines, then the outcome: one batch
            if job.reason == "shutdown":
                records.append((EXECUTOR, run.execution_id, self._hand_back(task)))
                WORKER_METRICS.handed_back.inc()
            else:
                outcome = self._result(task, state, outputs, error)
                records.append((EXECUTOR, run.execution_id, outcome))
                type_name = _type_name(task)
                WORKER_METRICS.task_runs.labels(type_name, state.value).inc()
                WORKER_METRICS.task_duration.labels(type_name).observe(
                    time.monotonic() - job.claimed
                )
            records.append((WORKER_JOBS, run.id, None))
            self._report(records, task.job_id)
        finally:
            self._finish(job)

    def _report(self, records: list[Outgoing], job_id: str) -> None:
        """Emit an attempt's outcome, retrying while the queue refuses it (unreachable, or its
        disk full): lost, the task run would wait for ever (its worker is alive). A worker cut
        off gives up; the coordinator hands the attempt back. A stopping worker without the
        cut-off watchdog (embedded) gives up after a few tries: its job record stays, and the
        next start hands the attempt back. Duplicates are fine: inputs are applied once."""
        tries = 0
        while True:
            try:
                self.queue.emit_many(records)
                if tries:
                    log.info(
                        "worker %s: outcome of %s reported after %d tries",
                        self.id,
                        job_id,
                        tries + 1,
                    )
                return
            except Exception:
                tries += 1
                if tries == 1 or tries % 30 == 0:
                    log.exception(
                        "worker %s: cannot report the outcome of %s (%d tries); retrying",
                        self.id,
                        job_id,
                        tries,
                    )
            if self.config.cut_off_after is None and tries >= 3 and self._stopping.is_set():
                return
            if self.failed.wait(1.0):
                return

    def _attempt(
        self, job: _Job, ctx: TaskRunContext
    ) -> tuple[State, dict[str, Any] | None, str | None]:
        if job.reason == "shutdown":
            ctx.log("WARN", "The worker is stopping: task handed back before it started")
            return State.KILLED, None, None
        if job.reason is not None:
            ctx.log("WARN", "Task killed before it started")
            return State.KILLED, None, None
        if is_working_directory(job.task):
            return WorkingDirectoryRun(self, job, ctx).run()
        try:
            runnable = self._parse(job.task)
            # PT0S is no timeout, as Kestra reads it
            timeout: timedelta | None = resolve(runnable.timeout, ctx.render_typed) or None
        except Exception as exc:
            message = _message(exc)
            ctx.log("ERROR", message)
            return State.FAILED, None, ctx.mask(message)

        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["outputs"] = runnable.run(ctx)
            except BaseException as exc:  # noqa: B036 - reported as the attempt's failure
                box["error"] = exc
            finally:
                done.set()
                job.wake.set()

        thread = threading.Thread(target=target, name=f"lanner-task-{job.task.task_run.id}")
        thread.daemon = True
        thread.start()
        limit = time.monotonic() + timeout.total_seconds() if timeout is not None else None
        if job.deadline is not None and (limit is None or job.deadline[0] < limit):
            limit, timeout = job.deadline  # the enclosing WorkingDirectory's ends first
        while not done.is_set() and job.reason is None:
            remaining = None if limit is None else limit - time.monotonic()
            if remaining is not None and remaining <= 0:
                assert timeout is not None
                ctx.log("ERROR", f"Timeout after {format_iso_duration(timeout)}")
                job.stop("timeout")
                break
            due = ctx.log_flush_due()  # a task logging once then working long still shows it
            if due is not None and due <= 0:
                try:
                    ctx.flush_logs()
                    due = ctx.log_flush_due()
                except Exception:  # kept in the buffer: they go out with the result
                    log.exception("worker %s: cannot emit the logs of %s", self.id, job.task.job_id)
                    due = LOG_FLUSH_SECONDS
            wait = remaining if due is None else due if remaining is None else min(due, remaining)
            job.wake.wait(wait)
            job.wake.clear()
        if not done.is_set():
            if not done.wait(self.config.kill_grace + 1.0):
                ctx.log("WARN", "The task did not stop after its kill; its thread is abandoned")

        if job.reason == "timeout":
            assert timeout is not None
            return State.FAILED, None, f"Timeout after {format_iso_duration(timeout)}"
        if job.reason == "shutdown":
            ctx.log("WARN", "The worker is stopping: task handed back for a new attempt")
            return State.KILLED, None, None
        if job.reason is not None:
            ctx.log("WARN", "Task killed")
            return State.KILLED, None, None
        error = box.get("error")
        if error is not None:
            message = _message(error)
            log.debug("task %s failed", job.task.job_id, exc_info=error)
            ctx.log("ERROR", message)
            failed_outputs = getattr(error, "outputs", None)
            if isinstance(failed_outputs, Mapping):
                return State.FAILED, self._outputs(ctx, failed_outputs), ctx.mask(message)
            return State.FAILED, None, ctx.mask(message)
        produced = box.get("outputs")
        state = State.SUCCESS
        final = getattr(produced, "final_state", None)
        if final:
            state = State(str(final))
        if produced is None:
            return state, {}, None
        if not isinstance(produced, Mapping):
            message = f"task returned {type(produced).__name__}, not a map of outputs"
            ctx.log("ERROR", message)
            return State.FAILED, None, message
        return state, self._outputs(ctx, produced), None

    def _parse(self, task: WorkerTask) -> RunnableTask:
        type_name = str(task.task.get("type", ""))
        cls = registry().get(type_name)
        if cls is None:
            raise LannerError(f"Unknown task type '{type_name}'")
        if not issubclass(cls, RunnableTask):
            raise LannerError(f"Task type '{type_name}' cannot run on a worker")
        return cls.model_validate(task.task)

    def _outputs(self, ctx: TaskRunContext, outputs: Mapping[str, Any]) -> dict[str, Any]:
        safe = ctx.mask_outputs(json_safe(outputs))
        result, moved = offload(safe, self.config.max_output_bytes, ctx.put_data)
        for key in moved:
            ctx.log(
                "WARN",
                f"Output '{key}' is too large for a message: stored in internal storage as "
                f"{result[key]}",
            )
        return result


def _message(exc: BaseException) -> str:
    if isinstance(exc, LannerError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return f"Invalid task: {exc}"
    if type(exc).__name__ == "TaskFailed":
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _StartMarkers:
    """Tombstones a worker writes to ``kills`` at start and reads back: a record's partition
    comes from its key, so markers go out in batches of several keys until each partition has
    given one back (``kills`` has one partition in production; tests may give it more)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.partitions = 0
        self.pending: set[str] = set()
        self.seen: set[int] = set()
        self._next = 0

    def batch(self, partitions: int) -> list[str]:
        self.partitions = partitions
        keys = [f"{self.base}:{self._next + i}" for i in range(2 * partitions)]
        self._next += len(keys)
        self.pending.update(keys)
        return keys

    def read(self, record: Record) -> bool:
        """Notes a tombstone; True once every partition gave a marker back."""
        if record.key in self.pending:
            self.pending.discard(record.key)
            self.seen.add(record.partition)
        return self.partitions > 0 and len(self.seen) >= self.partitions


def _type_name(task: WorkerTask) -> str:
    return str(task.task.get("type", "")) if isinstance(task.task, dict) else ""


def _describe(partitions: list[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return ", ".join(f"{t} {sorted(p)}" for t, p in sorted(by_topic.items())) or "nothing"
