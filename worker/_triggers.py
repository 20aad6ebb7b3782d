"""Polling-trigger evaluation on the worker (Kestra's ``WorkerTrigger``).

The scheduler sends a due polling trigger on ``worker-triggers[.<group>]`` (consumer group
``worker-triggers[.<group>]``: each trigger goes to one worker of the group), locked at the
message's ``date`` (``scheduler.polling``). The worker commits the record as soon as it is read
(at most once: a record is never evaluated by two workers; a worker that dies mid-evaluation
leaves the lock to expire at its ``deadline`` and the scheduler sends the trigger again),
evaluates it on a thread of its own, and answers with a ``TriggerRequest`` on ``triggers``
carrying a ``PollingEvaluation``: the ``trigger.*`` variables of the execution to start, or
none. An evaluation still running at its deadline is not answered: the lock has expired and
another evaluation may already run, whose answer is the one that counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from common.ids import new_id
from common.models.messages import LogEntry
from common.models.trigger import PollingEvaluation, TriggerRequest, WorkerTrigger
from common.plugins.base import PollingTrigger
from common.plugins.registry import registry
from common.queue.base import LOGS, TRIGGERS, Outgoing, Queue, worker_triggers_topic
from common.storage.base import Storage

from ._outputs import json_safe

log = logging.getLogger("lanner.worker")
_REMEMBERED = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


class PollingRunContext:
    """What a polling trigger sees (``common.plugins.base.PollingContext``)."""

    def __init__(self, message: WorkerTrigger, storage: Storage, clock: Callable[[], datetime]):
        self.message = message
        self._storage = storage
        self._clock = clock
        self._variables: dict[str, Any] = dict(message.variables)
        self.logs: list[LogEntry] = []
        self._functions: dict[str, Callable[..., Any]] = {
            "read": lambda uri: storage.get(str(uri)).decode("utf-8", errors="replace"),
            "fileExists": storage.exists,
        }

    @property
    def variables(self) -> Mapping[str, Any]:
        return self._variables

    @property
    def namespace(self) -> str:
        return self.message.namespace

    @property
    def tenant(self) -> str:
        return self.message.tenant_id

    @property
    def storage(self) -> Storage:
        return self._storage

    def render(self, value: Any) -> Any:
        from common.templating import render_object

        return render_object(value, self._variables, functions=self._functions)

    def render_typed(self, value: Any) -> Any:
        if not isinstance(value, str):
            return self.render(value)
        from common.templating import render_typed

        return render_typed(value, self._variables, functions=self._functions)

    def log(self, level: str, message: str) -> None:
        self.logs.append(
            LogEntry(
                tenant_id=self.message.tenant_id,
                namespace=self.message.namespace,
                flow_id=self.message.flow_id,
                trigger_id=str(self.message.trigger.get("id")),
                timestamp=self._clock(),
                level=level.upper() if level.upper() != "WARNING" else "WARN",  # type: ignore[arg-type]
                thread="worker",
                message=str(message),
            )
        )

    def seconds_left(self) -> float:
        if self.message.deadline is None:
            return 300.0
        return (self.message.deadline - self._clock()).total_seconds()


class TriggerEvaluator:
    """Reads ``worker-triggers[.<group>]`` and evaluates each trigger on a thread."""

    def __init__(
        self,
        queue: Queue,
        storage: Storage,
        *,
        worker_id: str,
        group: str | None,
        threads: int,
        poll_timeout: float = 0.5,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.queue = queue
        self.storage = storage
        self.worker_id = worker_id
        self.group = group
        self.threads = max(1, threads)
        self.poll_timeout = poll_timeout
        self.clock = clock
        self.topic = worker_triggers_topic(group)
        self.consumer_group = f"worker-triggers.{group}" if group else "worker-triggers"
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lanner-trigger")
        self._cond = threading.Condition()
        self._running: set[str] = set()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.evaluated = 0

    def start(self) -> None:
        self._sub = self.queue.subscribe([self.topic], self.consumer_group)
        self._thread = threading.Thread(
            target=self._run, name="lanner-worker-triggers", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sub.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._cond:
                    while len(self._running) >= self.threads and not self._stopping.is_set():
                        self._cond.wait(self.poll_timeout)
                    free = self.threads - len(self._running)
                if self._stopping.is_set():
                    return
                records = self._sub.poll(max_records=free, timeout=self.poll_timeout)
                if not records:
                    continue
                self._sub.commit(records)  # at most once: a lost evaluation expires its lock
                for record in records:
                    if record.value is None:
                        continue
                    try:
                        message = WorkerTrigger.model_validate_json(record.value)
                    except ValueError as exc:
                        log.error("worker %s: undecodable polling trigger: %s", self.worker_id, exc)
                        continue
                    job = f"{message.uid}@{message.date.isoformat()}"
                    with self._cond:
                        if job in self._seen:
                            continue
                        self._seen[job] = None
                        while len(self._seen) > _REMEMBERED:
                            self._seen.popitem(last=False)
                        self._running.add(job)
                    self._pool.submit(self._evaluate, job, message)
            except Exception:
                log.exception("worker %s: polling-trigger dispatch failed", self.worker_id)
                self._stopping.wait(1.0)

    def _evaluate(self, job: str, message: WorkerTrigger) -> None:
        try:
            if message.deadline is not None and self.clock() >= message.deadline:
                # read after its lock expired: a newer evaluation may run, never beside it
                log.warning("worker %s: %s arrived past its lock: skipped", self.worker_id, job)
                return
            ctx = PollingRunContext(message, self.storage, self.clock)
            variables: dict[str, Any] | None = None
            error: str | None = None
            started = time.monotonic()
            try:
                type_name = str(message.trigger.get("type", ""))
                cls = registry().get(type_name)
                if cls is None or not issubclass(cls, PollingTrigger):
                    raise ValueError(f"'{type_name}' is not a polling trigger")
                trigger = cls.model_validate(message.trigger)
                produced = trigger.evaluate(ctx)
                if produced is not None:
                    variables = json_safe(dict(produced))
            except Exception as exc:  # reported in the answer: the trigger is unlocked
                error = f"{type(exc).__name__}: {exc}"
                ctx.log("WARN", f"Evaluation failed: {error}")
            if message.deadline is not None and self.clock() > message.deadline:
                log.warning(
                    "worker %s: evaluation of %s took %.1f s, past its lock: not answered",
                    self.worker_id,
                    message.uid,
                    time.monotonic() - started,
                )
                return
            answer = TriggerRequest(
                id=new_id(),
                tenant_id=message.tenant_id,
                namespace=message.namespace,
                flow_id=message.flow_id,
                trigger_id=str(message.trigger.get("id")),
                date=self.clock(),
                evaluation=PollingEvaluation(
                    date=message.date, variables=variables, error=error, worker_id=self.worker_id
                ),
                source=f"worker:{self.worker_id}",
            )
            records: list[Outgoing] = [(LOGS, message.uid, e.to_json()) for e in ctx.logs]
            records.append((TRIGGERS, answer.key, answer.to_json()))
            self.evaluated += 1
            for attempt in range(3):
                try:
                    self.queue.emit_many(records)
                    break
                except Exception:
                    log.exception("worker %s: cannot answer %s (%d)", self.worker_id, job, attempt)
                    if self._stopping.wait(1.0):
                        return
        finally:
            with self._cond:
                self._running.discard(job)
                self._cond.notify_all()
