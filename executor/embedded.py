"""The executor on the embedded SQLite queue: decode, load state, call the pure functions,
store, emit, commit.

One thread consumes the ``executor`` topic. Each polled batch is stepped by ``core.step``
(outside the database lock), then applied in one SQLite transaction that stores the new
states, emits every message and commits the offsets, so a SIGKILL at any point leaves either
all of a batch or none of it: exactly-once in this mode.

Every decision is made by a pure module shared with the Kafka shell and the test harness:
``concurrency`` (flow slots, Dequeue), ``flow_triggers`` (executions started by others' state
changes, windowed preconditions), ``timers`` (due wake-ups), ``liveness`` (jobs of dead
workers) and the flow catalog (``common.flow.catalog``). This module only keeps their states
(cached in memory, stored in its tables in the batch's transaction) and moves records.

An input on which the core raises fails its own execution (``core.fail``) and the batch goes
on; a batch that fails otherwise (I/O) is retried, and one that keeps failing is applied input
by input so that only the input that still fails is given up.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from common.errors import MessageTooLargeError, QueueError, RepositoryError
from common.flow.catalog import FlowCatalog
from common.models.execution import Execution
from common.models.flow import Flow
from common.models.messages import (
    EXECUTOR_INPUT,
    ExecutorInput,
    NewExecution,
    SetLabels,
    WorkerHeartbeat,
    WorkerJob,
)
from common.models.state import State
from common.plugins.core.triggers import FlowTrigger
from common.queue import base as topics
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.base import FlowRepository
from common.storage.base import Storage

from . import concurrency, flow_triggers, liveness, polling, timers
from .core import CoreConfig, StepResult, step
from .core import fail as core_fail
from .kv import flow_trigger_kv, step_with_kv, storage_reader
from .metrics import EXECUTOR_METRICS, observe_step
from .records import step_records
from .state import ExecutorState

log = logging.getLogger("lanner.executor")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executor_states (
    execution_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    next_wakeup REAL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executor_states_flow ON executor_states (namespace, flow_id, state);
CREATE INDEX IF NOT EXISTS executor_states_wakeup ON executor_states (next_wakeup);
CREATE TABLE IF NOT EXISTS executor_worker_jobs (
    task_run_id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    worker_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executor_workers (
    worker_id TEXT PRIMARY KEY,
    last_seen REAL NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executor_flow_slots (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS executor_disabled_triggers (
    uid TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS executor_multiple_conditions (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
"""

_CACHED_STATES = 2000
# states of an execution holding or waiting for a concurrency slot
_HOLDING = tuple(s.value for s in State if not s.terminal and s != State.CREATED)
GROUP = "executor"
# a batch failing this many times in a row is applied one input at a time to isolate the culprit
_ISOLATE_AFTER = 3


def _now() -> datetime:
    return datetime.now(UTC)


def _transient(exc: Exception) -> bool:
    """An I/O failure: the batch is retried as long as it lasts, never given up."""
    if isinstance(exc, MessageTooLargeError):
        return False
    return isinstance(exc, (sqlite3.OperationalError, OSError, QueueError, RepositoryError))


class EmbeddedExecutor:
    """The executor of ``lanner server local``. ``start()``, then ``stop()``."""

    def __init__(
        self,
        db: SqliteDatabase,
        queue: SqliteQueue,
        flows: FlowRepository,
        config: CoreConfig | None = None,
        *,
        local_worker_ids: Callable[[], set[str]] | None = None,
        worker_dead_after: float = 30.0,
        clock: Callable[[], datetime] = _now,
        batch_size: int = 200,
        storage: Storage | None = None,
    ) -> None:
        self.db = db
        # ``kv()`` in the properties the core renders reads the KV store through it
        self.kv_read = storage_reader(storage) if storage is not None else None
        self.queue = queue
        self.flows = flows
        self.config = config or CoreConfig()
        self.clock = clock
        self.batch_size = batch_size
        self.worker_dead_after = worker_dead_after
        self.local_worker_ids = local_worker_ids
        db.executescript(_SCHEMA)
        self.catalog = FlowCatalog(flows)
        self.liveness = liveness.Liveness()
        self._timers_sent = timers.Sent()
        # states as last stored: this executor is their only writer (one per database)
        self._states: OrderedDict[str, ExecutorState] = OrderedDict()
        self._slots: dict[str, concurrency.FlowSlots] = {}
        self._windows: flow_triggers.Windows | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = time.time()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self.liveness = self._load_liveness()
        self._sub = self.queue.subscribe([topics.EXECUTOR], GROUP)
        self._flows_sub = self.queue.subscribe([topics.FLOWS], f"{GROUP}-catalog")
        self._side = self.queue.subscribe([topics.WORKER_JOBS, topics.WORKERS], f"{GROUP}-side")
        from common.trigger_states import DisabledTriggers

        stored = [uid for (uid,) in self.db.query("SELECT uid FROM executor_disabled_triggers")]
        self._disabled = DisabledTriggers(
            self.queue, f"{GROUP}-trigger-states", commit=True, initial=stored
        )
        self._recover_lost_jobs()
        self._thread = threading.Thread(target=self._run, name="lanner-executor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            self._sub.close()  # leave the groups: a next executor takes the partitions at once
            self._side.close()
            self._disabled.close()

    def _run(self) -> None:
        last_maintenance = 0.0
        pending: list[Any] = []  # a batch that failed: retried, never skipped
        failures = 0
        while not self._stop.is_set():
            records = pending or self._sub.poll(self.batch_size, timeout=0.1)
            if records:
                try:
                    # flows saved before these inputs were sent are known when they apply: a
                    # Flow trigger deployed just before an execution ends sees it end
                    self._refresh_flows()
                    self._process(records)
                    pending, failures = [], 0
                except Exception as exc:  # noqa: BLE001 - the loop must survive anything and retry
                    failures += 1
                    log.exception("executor batch failed (%d time(s)); retrying", failures)
                    EXECUTOR_METRICS.errors.inc()
                    pending = records
                    if failures >= _ISOLATE_AFTER and not _transient(exc):
                        self._isolate(records)
                        pending, failures = [], 0
                    else:
                        self._stop.wait(min(0.2 * failures, 5.0))
            if time.monotonic() - last_maintenance >= 0.1:
                last_maintenance = time.monotonic()
                try:
                    self._refresh_flows()
                    self._disabled_uids()  # and lets the queue purge the states read
                    self._side_topics()
                    self._emit_due_timers()
                    self._check_dead_workers()
                except Exception:  # noqa: BLE001 - retried at the next tick
                    log.exception("executor maintenance failed; retrying")
                    EXECUTOR_METRICS.errors.inc()

    def _isolate(self, records: list[Any]) -> None:
        """Apply a batch that keeps failing (not on I/O) one input at a time; an input that
        still fails ends its execution FAILED (with the reason in its logs) instead of blocking
        the rest."""
        for record in records:
            try:
                self._process([record])
            except Exception as exc:  # noqa: BLE001 - this input is the culprit
                log.exception("executor input at offset %s cannot be applied", record.offset)
                try:
                    self._process([record], failing=exc)
                except Exception:  # noqa: BLE001 - last resort: never block the others
                    log.exception("could not stop the execution of offset %s", record.offset)
                    self._sub.commit([record])

    # ------------------------------------------------------------------ main path
    def _process(self, records: list[Any], failing: Exception | None = None) -> None:
        """Steps run before the transaction, which then only stores, emits and commits: the
        database lock (shared with the API, the worker and the indexer) is held for the writes
        alone. ``failing``: these inputs cannot be applied (this error); fail their executions."""
        started = time.perf_counter()
        dirty: dict[str, ExecutorState] = {}
        dirty_slots: set[str] = set()
        dirty_windows: set[str] = set()
        out: list[tuple[str, str | None, bytes | None]] = []
        try:
            for record in records:
                try:
                    event = EXECUTOR_INPUT.validate_json(record.value)
                except ValidationError as exc:
                    log.error("skipping an undecodable executor input: %s", exc)
                    continue
                self._apply(event, dirty, dirty_slots, dirty_windows, out, failing)
            snapshots = [(state, state.execution.to_json()) for state in dirty.values()]
            with self.db.transaction() as conn:
                self._flush(conn, dirty, snapshots)
                self._store_slots(conn, dirty_slots)
                self._store_windows(conn, dirty_windows)
                self.queue.emit_many(out)
                self._sub.commit(records)
        except BaseException:
            # the cached states were changed in place by a batch that is rolled back
            self._states.clear()
            self._slots.clear()
            self._windows = None
            raise
        EXECUTOR_METRICS.batch_seconds.observe(time.perf_counter() - started)

    def _load(self, execution_id: str) -> ExecutorState | None:
        state = self._states.get(execution_id)
        if state is not None:
            return state
        rows = self.db.query(
            "SELECT body FROM executor_states WHERE execution_id = ?", (execution_id,)
        )
        return ExecutorState.model_validate_json(rows[0][0]) if rows else None

    def _apply(
        self,
        event: ExecutorInput,
        dirty: dict[str, ExecutorState],
        dirty_slots: set[str],
        dirty_windows: set[str],
        out: list[tuple[str, str | None, bytes | None]],
        failing: Exception | None = None,
    ) -> None:
        state = self._load(event.execution_id)
        previous = state.execution.state.current if state is not None else None
        execution = (
            event.execution
            if isinstance(event, NewExecution)
            else (state.execution if state else None)
        )
        if execution is None and isinstance(event, SetLabels):
            # labels for an ended execution the executor never held: it keeps its state
            execution = event.execution
            previous = execution.state.current if execution is not None else None
        if execution is None:
            log.warning("input %s for unknown execution %s ignored", event.kind, event.execution_id)
            return
        flow = self._flow(execution)
        slots = self._slots_of(execution) if flow and flow.concurrency else None
        running = concurrency.running_count(slots, execution.id) if slots else 0
        # owned: the state is this executor's own (cached or just decoded); on a rollback the
        # cache is dropped, so changing it in place is safe and saves copying the execution
        try:
            if failing is not None:
                raise failing
            result = step_with_kv(
                flow,
                state,
                event,
                self.clock(),
                self.config,
                running_count=running,
                owned=True,
                read=self.kv_read,
                step=step,  # looked up at each call (tests replace it)
            )
        except Exception as exc:  # noqa: BLE001 - a defect on this input fails its execution only
            result = self._failed(flow, state, event, exc)
        if result.state is None or not result.changed:
            return
        self._cache(result.state)
        dirty[execution.id] = result.state
        out.extend(step_records(result))
        if slots is not None and flow is not None:
            for dequeue in concurrency.observe(slots, flow.concurrency, result.state.execution):
                out.append((topics.EXECUTOR, dequeue.execution_id, dequeue.to_json()))
            dirty_slots.add(concurrency.execution_flow_key(execution))
        observe_step(event.kind, previous, result.state.execution, result.ended, self.clock())
        if result.state.execution.state.current != previous:
            self._flow_triggers(result.state.execution, previous, out, dirty_windows)
            out.extend(polling.ended_records(result.state.execution, previous, self.clock()))

    def _failed(
        self, flow: Flow | None, state: ExecutorState | None, event: ExecutorInput, exc: Exception
    ) -> StepResult:
        log.exception("executor input %s of execution %s failed", event.kind, event.execution_id)
        EXECUTOR_METRICS.errors.inc()
        if state is None:
            if not isinstance(event, NewExecution):
                return StepResult(state=None)
            state = ExecutorState(execution=event.execution)
        message = (
            f"Lanner could not apply a '{event.kind}' input to this execution "
            f"({type(exc).__name__}: {exc}); the execution was stopped. This is a defect: "
            "please report it with the server log."
        )
        return core_fail(flow, state, message, self.clock(), self.config)

    def _slots_of(self, execution: Execution) -> concurrency.FlowSlots:
        key = concurrency.execution_flow_key(execution)
        slots = self._slots.get(key)
        if slots is not None:
            return slots
        rows = self.db.query("SELECT body FROM executor_flow_slots WHERE key = ?", (key,))
        if rows:
            slots = concurrency.FlowSlots.model_validate_json(rows[0][0])
        else:  # first use (or a database from before the slots table): from the states
            marks = ",".join("?" * len(_HOLDING))
            held = self.db.query(
                "SELECT execution_id, state FROM executor_states WHERE tenant = ? AND"
                f" namespace = ? AND flow_id = ? AND state IN ({marks}) ORDER BY created",
                (execution.tenant_id or "main", execution.namespace, execution.flow_id, *_HOLDING),
            )
            slots = concurrency.FlowSlots(
                running=[e for e, s in held if s != State.QUEUED.value],
                queued=[e for e, s in held if s == State.QUEUED.value],
            )
        self._slots[key] = slots
        return slots

    def _store_slots(self, conn: Any, keys: set[str]) -> None:
        conn.executemany(
            "INSERT INTO executor_flow_slots (key, body) VALUES (?, ?) ON CONFLICT (key) DO"
            " UPDATE SET body = excluded.body",
            [(key, self._slots[key].model_dump_json()) for key in keys],
        )

    def _cache(self, state: ExecutorState) -> None:
        self._states[state.execution.id] = state
        self._states.move_to_end(state.execution.id)
        while len(self._states) > _CACHED_STATES:
            self._states.popitem(last=False)

    def _flush(
        self,
        conn: Any,
        dirty: dict[str, ExecutorState],
        serialized: list[tuple[ExecutorState, bytes]],
    ) -> None:
        """Store the states changed by the batch (once per execution, however many inputs it
        got) and emit their ``executions`` snapshots. ``serialized``: the dirty states with
        their snapshot JSON, made before the transaction."""
        snapshots: list[tuple[str, str | None, bytes | None]] = []
        for state, snapshot in serialized:
            self._store(conn, state, snapshot)
            snapshots.append((topics.EXECUTIONS, state.execution.id, snapshot))
        dirty.clear()
        self.queue.emit_many(snapshots)

    def _store(self, conn: Any, state: ExecutorState, snapshot: bytes) -> None:
        ex = state.execution
        wake = state.next_wakeup()
        # the body is the state's JSON; its execution part is the snapshot, serialized once
        rest = state.model_dump_json(by_alias=True, exclude_none=True, exclude={"execution"})
        body = '{"execution":' + snapshot.decode() + ("," + rest[1:] if rest != "{}" else "}")
        conn.execute(
            "INSERT INTO executor_states (execution_id, tenant, namespace, flow_id, state, created,"
            " next_wakeup, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (execution_id) DO"
            " UPDATE SET state = excluded.state, next_wakeup = excluded.next_wakeup,"
            " body = excluded.body",
            (
                ex.id,
                ex.tenant_id or "main",
                ex.namespace,
                ex.flow_id,
                ex.state.current.value,
                (ex.state.start_date or self.clock()).timestamp(),
                wake.timestamp() if wake else None,
                body,
            ),
        )

    # ------------------------------------------------------------------ around the core
    def _flow(self, execution: Execution) -> Flow | None:
        return self.catalog.of(execution)

    def _flow_triggers(
        self,
        execution: Execution,
        previous: State | None,
        out: list[tuple[str, str | None, bytes | None]],
        dirty_windows: set[str],
    ) -> None:
        flows = self.catalog.with_trigger(FlowTrigger)
        if not flows:
            return
        if self._windows is None:
            self._windows = flow_triggers.Windows()
            for key, body in self.db.query("SELECT key, body FROM executor_multiple_conditions"):
                try:
                    self._windows.windows[key] = flow_triggers.Window.model_validate_json(body)
                except ValidationError:
                    pass  # written by an older version: that window starts again
        now, disabled = self.clock(), self._disabled_uids()
        kv = flow_trigger_kv(flows, execution, previous, now, self._windows, disabled, self.kv_read)
        created, changed = flow_triggers.evaluate(
            flows, execution, previous, now, self._windows, disabled, kv=kv
        )
        for new in created:
            # Kestra's Flow trigger passes its rendered inputs as they are: a flow whose required
            # input the trigger does not give still runs (FlowTriggerCaseTest)
            inp = NewExecution(id=f"new:{new.id}", execution_id=new.id, execution=new)
            out.append((topics.EXECUTOR, new.id, inp.to_json()))
        dirty_windows |= changed

    def _disabled_uids(self) -> frozenset[str]:
        """The Flow triggers disabled through the API (states on ``triggers``), kept in a
        table: the SQLite queue purges the records once read."""
        if self._disabled.refresh():
            uids = self._disabled.uids()
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM executor_disabled_triggers")
                conn.executemany(
                    "INSERT INTO executor_disabled_triggers (uid) VALUES (?)",
                    [(uid,) for uid in sorted(uids)],
                )
        self._disabled.committed()
        return self._disabled.uids()

    def _store_windows(self, conn: Any, keys: set[str]) -> None:
        if not keys or self._windows is None:
            return
        conn.executemany(
            "INSERT INTO executor_multiple_conditions (key, body) VALUES (?, ?) ON CONFLICT"
            " (key) DO UPDATE SET body = excluded.body",
            [(key, self._windows.windows[key].model_dump_json()) for key in keys],
        )

    def _refresh_flows(self) -> None:
        """A flow saved or deleted: the catalog reads it again (a poll with nothing new is
        one indexed SELECT, cheap enough before every batch)."""
        records = self._flows_sub.poll(1000, timeout=0)
        if records:
            self.catalog.changed()
            self._flows_sub.commit(records)

    def _side_topics(self) -> int:
        records = self._side.poll(500, timeout=0)
        if not records:
            return 0
        received_at = self.clock()
        with self.db.transaction() as conn:
            for record in records:
                if record.topic == topics.WORKER_JOBS:
                    job = (
                        WorkerJob.model_validate_json(record.value)
                        if record.value is not None
                        else None
                    )
                    held = liveness.on_job(self.liveness, str(record.key), job)
                    if held is None:
                        conn.execute(
                            "DELETE FROM executor_worker_jobs WHERE task_run_id = ?", (record.key,)
                        )
                        continue
                    conn.execute(
                        "INSERT INTO executor_worker_jobs VALUES (?, ?, ?, ?) ON CONFLICT"
                        " (task_run_id) DO UPDATE SET attempt = excluded.attempt,"
                        " worker_id = excluded.worker_id",
                        (held.task_run_id, held.execution_id, held.attempt, held.worker_id),
                    )
                elif record.topic == topics.WORKERS and record.value is not None:
                    beat = WorkerHeartbeat.model_validate_json(record.value)
                    seen = liveness.on_heartbeat(self.liveness, beat, received_at)
                    conn.execute(
                        "INSERT INTO executor_workers VALUES (?, ?, ?) ON CONFLICT (worker_id) DO"
                        " UPDATE SET last_seen = excluded.last_seen, status = excluded.status",
                        (beat.worker_id, seen.last_seen.timestamp(), seen.status),
                    )
            self._side.commit(records)
        return len(records)

    def _emit_due_timers(self) -> None:
        now = self.clock()
        rows = self.db.query(
            "SELECT execution_id, body FROM executor_states WHERE next_wakeup IS NOT NULL AND"
            " next_wakeup <= ?",
            (now.timestamp(),),
        )
        records: list[tuple[str, str | None, bytes | None]] = []
        for execution_id, body in rows:
            wakeups = {
                key: datetime.fromisoformat(when.replace("Z", "+00:00"))
                for key, when in (json.loads(body).get("wakeups") or {}).items()
            }
            for timer in timers.to_send(self._timers_sent, execution_id, wakeups, now):
                records.append((topics.EXECUTOR, execution_id, timer.to_json()))
        self.queue.emit_many(records)

    def _load_liveness(self) -> liveness.Liveness:
        state = liveness.Liveness()
        for worker_id, last_seen, status in self.db.query(
            "SELECT worker_id, last_seen, status FROM executor_workers"
        ):
            state.workers[worker_id] = liveness.WorkerSeen(
                last_seen=datetime.fromtimestamp(last_seen, UTC), status=status
            )
        for task_run_id, execution_id, attempt, worker_id in self.db.query(
            "SELECT task_run_id, execution_id, attempt, worker_id FROM executor_worker_jobs"
        ):
            state.jobs[task_run_id] = liveness.Job(
                task_run_id=task_run_id,
                execution_id=execution_id,
                attempt=attempt,
                worker_id=worker_id,
            )
        return state

    def _recover_lost_jobs(self) -> None:
        """Jobs held by workers of a previous process: that process died, hand them back."""
        # every job record of the previous process first (more than one poll after a busy run)
        while self._side_topics():
            pass
        local = self.local_worker_ids() if self.local_worker_ids else set()
        self._hand_back(liveness.orphan_jobs(self.liveness, local), "the previous process stopped")

    def _check_dead_workers(self) -> None:
        dead_after = timedelta(seconds=self.worker_dead_after)
        lost = liveness.lost_jobs(self.liveness, self.clock(), dead_after)
        self._hand_back(lost, "it stopped sending heartbeats")

    def _hand_back(self, jobs: list[liveness.Job], why: str) -> None:
        if not jobs:
            return
        for job in jobs:
            log.warning(
                "task run %s lost with worker %s (%s): resubmitting",
                job.task_run_id,
                job.worker_id,
                why,
            )
        records: list[tuple[str, str | None, bytes | None]] = [
            (topics.EXECUTOR, died.execution_id, died.to_json())
            for died in liveness.worker_died(jobs)
        ]
        with self.db.transaction() as conn:
            conn.executemany(
                "DELETE FROM executor_worker_jobs WHERE task_run_id = ?",
                [(job.task_run_id,) for job in jobs],
            )
            self.queue.emit_many(records)
        liveness.forget(self.liveness, jobs)
        EXECUTOR_METRICS.resubmitted.inc(len(jobs))


__all__ = ["EmbeddedExecutor"]
