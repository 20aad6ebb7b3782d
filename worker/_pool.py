"""The task runner pool: polls worker tasks, runs them on threads, reports their results.

Per worker task: deduplicate on ``job_id`` → claim it in one ``produce_and_commit``: the
``WorkerJob`` record (``worker-jobs``), a RUNNING ``TaskResult`` (``executor``) and the offset
→ run the task in the pool → emit the final ``TaskResult`` and the ``worker-jobs`` tombstone
together. The dispatcher polls only as many records as there are free threads, and a full pool
polls paused, so a busy worker never holds tasks it cannot start and stays in its group.

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
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from common.errors import LannerError
from common.flow.durations import format_iso_duration
from common.ids import new_id
from common.models.messages import (
    KillOrder,
    TaskResult,
    WorkerJob,
    WorkerTask,
    WorkerTaskResult,
)
from common.models.state import State
from common.plugins.base import RunnableTask
from common.plugins.dynamic import resolve
from common.plugins.registry import registry
from common.queue.base import EXECUTOR, KILLS, WORKER_JOBS, Queue, Record, worker_tasks_topic
from common.secrets import SecretBox
from common.settings import Settings
from common.storage.base import Storage

from ._context import LOG_FLUSH_SECONDS, TaskRunContext
from ._heartbeat import Heartbeat
from ._outputs import json_safe, offload

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

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        return cls(
            threads=settings.worker_threads,
            group=settings.worker_group,
            tenant=settings.tenant,
            heartbeat_interval=settings.heartbeat_interval_seconds,
            max_output_bytes=settings.max_output_bytes,
            encryption_key=settings.encryption_key,
        )


@dataclass
class _Job:
    task: WorkerTask
    kill: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None  # "kill" | "timeout" | "shutdown"

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
        self, queue: Queue, storage: Storage, config: WorkerConfig | Settings | None = None
    ) -> None:
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
        self._done: OrderedDict[str, None] = OrderedDict()
        # execution id -> sequence of its latest kill order (see KillOrder)
        self._kills: OrderedDict[str, int] = OrderedDict()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lanner-worker")
        self._heartbeat = Heartbeat(
            queue,
            worker_id=self.id,
            group=self.config.group,
            threads=self.threads,
            interval=self.config.heartbeat_interval,
            running=self.running_count,
        )
        self._threads: list[threading.Thread] = []
        self._started = False

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        # kills first: a kill order emitted after a task was received must not be missed
        self._kill_sub = self.queue.subscribe([KILLS], f"worker-kills.{self.id}", from_latest=True)
        group = f"worker.{self.config.group}" if self.config.group else "worker"
        self._task_sub = self.queue.subscribe(
            [worker_tasks_topic(self.config.group)], group, instance_id=self.id
        )
        self._heartbeat.start()
        for target, name in ((self._dispatch, "dispatcher"), (self._listen_kills, "kills")):
            thread = threading.Thread(target=target, name=f"lanner-worker-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, drain_timeout: float | None = None) -> None:
        """Stop taking tasks; let running ones finish for ``drain_timeout`` seconds, then kill
        them (their results are KILLED); end with a TERMINATING heartbeat."""
        if not self._started or self._closed.is_set():
            return
        self._heartbeat.status = "TERMINATING"
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._threads[0].join()
        deadline = time.monotonic() + (
            self.config.drain_timeout if drain_timeout is None else drain_timeout
        )
        with self._cond:
            while self._running and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            for job in self._running.values():
                job.stop("shutdown")
        self._pool.shutdown(wait=True)
        self._closed.set()
        for thread in self._threads[1:]:
            thread.join()
        self._heartbeat.stop()
        self._heartbeat.beat()
        self._task_sub.close()
        self._kill_sub.close()

    def running_count(self) -> int:
        with self._cond:
            return len(self._running)

    # -------------------------------------------------------------- dispatch

    def _dispatch(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                if len(self._running) >= self.threads:
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
                for record in records:
                    self._accept(record)
            except Exception:
                log.exception("worker %s: dispatch failed", self.id)
                self._stopping.wait(1.0)

    def _accept(self, record: Record) -> None:
        if record.value is None:
            self._task_sub.commit([record])
            return
        try:
            task = WorkerTask.model_validate_json(record.value)
        except ValidationError as exc:
            log.error("worker %s: undecodable worker task at %s: %s", self.id, record.offset, exc)
            self._task_sub.commit([record])
            return
        job = _Job(task)
        with self._cond:
            duplicate = task.job_id in self._running or task.job_id in self._done
            if not duplicate:
                self._running[task.job_id] = job
        if duplicate:
            log.info("worker %s: skipping duplicate job %s", self.id, task.job_id)
            self._task_sub.commit([record])
            return
        run = task.task_run
        now = _now()
        job_record = WorkerJob(
            task_run_id=run.id,
            execution_id=run.execution_id,
            attempt=task.attempt,
            worker_id=self.id,
            date=now,
        )
        try:  # the claim: one transaction, so a crash never leaves half of it
            self._task_sub.produce_and_commit(
                [
                    (WORKER_JOBS, run.id, job_record.to_json()),
                    (EXECUTOR, run.execution_id, self._result(task, State.RUNNING, now=now)),
                ],
                [record],
            )
        except Exception:  # not claimed (e.g. its partition went to another worker): not done
            with self._cond:
                self._running.pop(task.job_id, None)
                self._cond.notify_all()
            raise
        with self._cond:  # a kill order may have arrived before the task did
            killed = self._kills.get(run.execution_id)
        if killed is not None and task.sequence <= killed:
            job.stop("kill")
        self._pool.submit(self._execute, job)

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

    def _finish(self, job: _Job) -> None:
        with self._cond:
            self._running.pop(job.task.job_id, None)
            self._done[job.task.job_id] = None
            while len(self._done) > _REMEMBERED:
                self._done.popitem(last=False)
            self._cond.notify_all()

    # -------------------------------------------------------------- kills

    def _listen_kills(self) -> None:
        while not self._closed.is_set():
            try:
                records = self._kill_sub.poll(max_records=100, timeout=self.config.poll_timeout)
                for record in records:
                    if record.value is not None:
                        self._apply_kill(KillOrder.model_validate_json(record.value))
                self._kill_sub.commit(records)
            except Exception:
                log.exception("worker %s: kill handling failed", self.id)
                self._closed.wait(1.0)

    def _apply_kill(self, order: KillOrder) -> None:
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

    # -------------------------------------------------------------- one attempt

    def _execute(self, job: _Job) -> None:
        task = job.task
        run = task.task_run
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
        )
        try:
            state, outputs, error = self._attempt(job, ctx)
        except Exception as exc:  # a bug of the worker itself: still report the attempt
            log.exception("worker %s: attempt %s crashed", self.id, task.job_id)
            state, outputs, error = State.FAILED, None, f"{type(exc).__name__}: {exc}"
        finally:
            ctx.cleanup()
        try:
            # the buffered log lines, the result and the tombstone: one transaction
            records = ctx.take_logs()
            records.append((EXECUTOR, run.execution_id, self._result(task, state, outputs, error)))
            records.append((WORKER_JOBS, run.id, None))
            self.queue.emit_many(records)
        except Exception:
            log.exception("worker %s: cannot report the result of %s", self.id, task.job_id)
        finally:
            self._finish(job)

    def _attempt(
        self, job: _Job, ctx: TaskRunContext
    ) -> tuple[State, dict[str, Any] | None, str | None]:
        if job.reason is not None:
            ctx.log("WARN", "Task killed before it started")
            return State.KILLED, None, None
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
