"""The executor on the embedded SQLite queue: decode, load state, ``core.step``, store, emit.

One thread consumes the ``executor`` topic. Each polled batch is applied in one SQLite
transaction that stores the new states, emits every message and commits the offsets, so a
SIGKILL at any point leaves either all of a batch or none of it: exactly-once in this mode.

Around the core it does what needs I/O or a clock: due wake-ups become ``Timer`` inputs, the
flow's running executions are counted for concurrency limits, a QUEUED execution is released
when a slot frees, flow triggers fire when an execution ends, and task runs held by a worker
that died (every worker of a previous process, or one that stopped heartbeating) are handed
back as ``WorkerDied`` inputs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from common.errors import FlowValidationError
from common.flow import parse_flow
from common.models.execution import Execution
from common.models.flow import Flow
from common.models.messages import (
    EXECUTOR_INPUT,
    Dequeue,
    ExecutorInput,
    NewExecution,
    Timer,
    WorkerDied,
    WorkerHeartbeat,
    WorkerJob,
)
from common.models.state import State
from common.plugins.core.triggers import FlowTrigger
from common.queue import base as topics
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.base import FlowRepository

from . import flow_triggers
from .core import CoreConfig, StepResult, step
from .core import fail as core_fail
from .metrics import EXECUTOR_METRICS
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
CREATE TABLE IF NOT EXISTS executor_multiple_conditions (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
"""

_CACHED_STATES = 2000
_ACTIVE = (State.RUNNING.value, State.PAUSED.value, State.KILLING.value)
GROUP = "executor"
# a batch failing this many times in a row is applied one input at a time to isolate the culprit
_ISOLATE_AFTER = 3


def _now() -> datetime:
    return datetime.now(UTC)


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
    ) -> None:
        self.db = db
        self.queue = queue
        self.flows = flows
        self.config = config or CoreConfig()
        self.clock = clock
        self.batch_size = batch_size
        self.worker_dead_after = worker_dead_after
        self.local_worker_ids = local_worker_ids
        db.executescript(_SCHEMA)
        self._flow_cache: dict[tuple[str, str, str, int | None], Flow | None] = {}
        self._trigger_flows: list[Flow] | None = None
        self._timers_sent: dict[str, float] = {}
        # states as last stored: this executor is their only writer (one per database)
        self._states: OrderedDict[str, ExecutorState] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = time.time()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        self._sub = self.queue.subscribe([topics.EXECUTOR], GROUP)
        self._side = self.queue.subscribe(
            [topics.FLOWS, topics.WORKER_JOBS, topics.WORKERS], f"{GROUP}-side"
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

    def _run(self) -> None:
        last_maintenance = 0.0
        pending: list[Any] = []  # a batch that failed: retried, never skipped
        failures = 0
        while not self._stop.is_set():
            records = pending or self._sub.poll(self.batch_size, timeout=0.1)
            if records:
                try:
                    self._process(records)
                    pending, failures = [], 0
                except Exception:  # noqa: BLE001 - the loop must survive anything and retry
                    failures += 1
                    log.exception("executor batch failed (%d time(s)); retrying", failures)
                    EXECUTOR_METRICS.errors.inc()
                    pending = records
                    if failures >= _ISOLATE_AFTER:
                        self._isolate(records)
                        pending, failures = [], 0
                    else:
                        self._stop.wait(0.2 * failures)
            if time.monotonic() - last_maintenance >= 0.1:
                last_maintenance = time.monotonic()
                try:
                    self._side_topics()
                    self._emit_due_timers()
                    self._check_dead_workers()
                except Exception:  # noqa: BLE001 - retried at the next tick
                    log.exception("executor maintenance failed; retrying")
                    EXECUTOR_METRICS.errors.inc()

    def _isolate(self, records: list[Any]) -> None:
        """Apply a batch that keeps failing one input at a time; an input that still fails
        ends its execution FAILED (with the reason in its logs) instead of blocking the rest."""
        for record in records:
            try:
                self._process([record])
            except Exception as exc:  # noqa: BLE001 - this input is the culprit
                log.exception("executor input at offset %s cannot be applied", record.offset)
                self._quarantine(record, exc)

    def _quarantine(self, record: Any, exc: Exception) -> None:
        self._states.clear()
        try:
            event = EXECUTOR_INPUT.validate_json(record.value)
            state = self._load(None, event.execution_id)
            with self.db.transaction() as conn:
                if state is not None:
                    flow = self._flow(state.execution)
                    message = (
                        f"Lanner could not apply a '{event.kind}' input to this execution "
                        f"({type(exc).__name__}: {exc}); the execution was stopped. This is a "
                        "defect: please report it with the server log."
                    )
                    result = core_fail(flow, state, message, self.clock(), self.config)
                    if result.state is not None and result.changed:
                        dirty = {result.state.execution.id: result.state}
                        self._flush(conn, dirty)
                        self.queue.emit_many(self._records(result))
                self._sub.commit([record])
        except Exception:  # noqa: BLE001 - last resort: never block the other executions
            log.exception("could not stop the execution of offset %s; skipping it", record.offset)
            self._sub.commit([record])

    # ------------------------------------------------------------------ main path
    def _process(self, records: list[Any]) -> None:
        """Steps run before the transaction, which then only stores, emits and commits: the
        database lock (shared with the API, the worker and the indexer) is held for the writes
        alone. An input that needs the stored states (a flow with a concurrency limit) and the
        ones after it are applied inside the transaction, as before."""
        started = time.perf_counter()
        dirty: dict[str, ExecutorState] = {}
        out: list[tuple[str, str | None, bytes | None]] = []
        ends: list[tuple[Execution, Flow | None]] = []
        try:
            events = []
            for record in records:
                try:
                    events.append(EXECUTOR_INPUT.validate_json(record.value))
                except ValidationError as exc:
                    log.error("skipping an undecodable executor input: %s", exc)
            done = 0
            for event in events:
                if not self._apply(None, event, dirty, out, ends):
                    break
                done += 1
            snapshots = [(state, state.execution.to_json()) for state in dirty.values()]
            with self.db.transaction() as conn:
                self._flush(conn, dirty, snapshots)
                for execution, flow in ends:
                    self._on_end(conn, execution, flow, out)
                for event in events[done:]:
                    self._apply(conn, event, dirty, out, ends)
                self._flush(conn, dirty)
                self.queue.emit_many(out)
                self._sub.commit(records)
        except BaseException:
            # the cached states were changed in place by a batch that is rolled back
            self._states.clear()
            raise
        EXECUTOR_METRICS.batch_seconds.observe(time.perf_counter() - started)

    def _load(self, conn: Any, execution_id: str) -> ExecutorState | None:
        state = self._states.get(execution_id)
        if state is not None:
            return state
        sql = "SELECT body FROM executor_states WHERE execution_id = ?"
        rows = (
            conn.execute(sql, (execution_id,)).fetchall()
            if conn
            else self.db.query(sql, (execution_id,))
        )
        return ExecutorState.model_validate_json(rows[0][0]) if rows else None

    def _apply(
        self,
        conn: Any | None,
        event: ExecutorInput,
        dirty: dict[str, ExecutorState],
        out: list[tuple[str, str | None, bytes | None]],
        ends: list[tuple[Execution, Flow | None]],
    ) -> bool:
        """Apply one input; without ``conn`` (outside the transaction), returns False without
        applying it when it needs the stored states, and leaves execution ends in ``ends``."""
        state = self._load(conn, event.execution_id)
        execution = (
            event.execution
            if isinstance(event, NewExecution)
            else (state.execution if state else None)
        )
        if execution is None:
            log.warning("input %s for unknown execution %s ignored", event.kind, event.execution_id)
            return True
        flow = self._flow(execution)
        running = 0
        if flow and flow.concurrency:
            if conn is None:
                return False
            self._flush(conn, dirty)
            running = self._running_count(conn, execution)
        # owned: the state is this executor's own (cached or just decoded); on a rollback the
        # cache is dropped, so changing it in place is safe and saves copying the execution
        result = step(
            flow, state, event, self.clock(), self.config, running_count=running, owned=True
        )
        if result.state is None or not result.changed:
            return True
        self._cache(result.state)
        dirty[execution.id] = result.state
        out.extend(self._records(result))
        EXECUTOR_METRICS.inputs.labels(kind=event.kind).inc()
        if result.ended:
            if conn is None:
                ends.append((result.state.execution, flow))
                return True
            if flow is not None and flow.concurrency is not None:
                self._flush(conn, dirty)
            self._on_end(conn, result.state.execution, flow, out)
        return True

    def _cache(self, state: ExecutorState) -> None:
        self._states[state.execution.id] = state
        self._states.move_to_end(state.execution.id)
        while len(self._states) > _CACHED_STATES:
            self._states.popitem(last=False)

    def _flush(
        self,
        conn: Any,
        dirty: dict[str, ExecutorState],
        serialized: list[tuple[ExecutorState, bytes]] | None = None,
    ) -> None:
        """Store the states changed since the last flush (once per execution, however many
        inputs it got) and emit their ``executions`` snapshots, in the batch's transaction.

        Called mid-batch too (concurrency counts read the stored states), so it must emit what
        it stores: a snapshot left out here would never reach the repository. ``serialized``:
        the dirty states with their snapshot JSON, made before the transaction."""
        if serialized is None:
            serialized = [(state, state.execution.to_json()) for state in dirty.values()]
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

    @staticmethod
    def _records(result: StepResult) -> list[tuple[str, str | None, bytes | None]]:
        records: list[tuple[str, str | None, bytes | None]] = []
        for wt in result.worker_tasks:
            records.append(
                (topics.worker_tasks_topic(wt.worker_group), wt.task_run.id, wt.to_json())
            )
        for inp in result.executor_inputs:
            records.append((topics.EXECUTOR, inp.execution_id, inp.to_json()))
        for order in result.kill_orders:
            records.append((topics.KILLS, order.execution_id, order.to_json()))
        for entry in result.logs:
            records.append((topics.LOGS, entry.execution_id, entry.to_json()))
        return records

    # ------------------------------------------------------------------ around the core
    def _flow(self, execution: Execution) -> Flow | None:
        tenant = execution.tenant_id or "main"
        revision = execution.flow_revision or None
        key = (tenant, execution.namespace, execution.flow_id, revision)
        if key not in self._flow_cache:
            record = self.flows.get(tenant, execution.namespace, execution.flow_id, revision)
            if record is None and revision is not None:
                record = self.flows.get(tenant, execution.namespace, execution.flow_id)
            flow: Flow | None = None
            if record is not None and not record.deleted:
                try:
                    flow = parse_flow(record.source)
                    flow = flow.model_copy(update={"revision": record.revision})
                except FlowValidationError as exc:
                    log.error("stored flow %s.%s is invalid: %s", record.namespace, record.id, exc)
            self._flow_cache[key] = flow
        return self._flow_cache[key]

    def _running_count(self, conn: Any, execution: Execution) -> int:
        marks = ",".join("?" * len(_ACTIVE))
        row = conn.execute(
            f"SELECT COUNT(*) FROM executor_states WHERE namespace = ? AND flow_id = ? AND state IN"
            f" ({marks}) AND execution_id != ?",
            (execution.namespace, execution.flow_id, *_ACTIVE, execution.id),
        ).fetchone()
        return int(row[0])

    def _on_end(
        self,
        conn: Any,
        execution: Execution,
        flow: Flow | None,
        out: list[tuple[str, str | None, bytes | None]],
    ) -> None:
        now = self.clock()
        records: list[tuple[str, str | None, bytes | None]] = []
        if flow is not None and flow.concurrency is not None:
            row = conn.execute(
                "SELECT execution_id FROM executor_states WHERE namespace = ? AND flow_id = ? AND"
                " state = ? ORDER BY created LIMIT 1",
                (execution.namespace, execution.flow_id, State.QUEUED.value),
            ).fetchone()
            if row:
                dequeue = Dequeue(id=f"dequeue:{row[0]}:{execution.id}", execution_id=row[0])
                records.append((topics.EXECUTOR, row[0], dequeue.to_json()))
        multi = {
            key: json.loads(body)
            for key, body in conn.execute("SELECT key, body FROM executor_multiple_conditions")
        }
        before = json.dumps(multi, sort_keys=True)
        for new in flow_triggers.evaluate(self._flows_with_triggers(), execution, now, multi):
            # Kestra's Flow trigger passes its rendered inputs as they are: a flow whose required
            # input the trigger does not give still runs (FlowTriggerCaseTest)
            inp = NewExecution(id=f"new:{new.id}", execution_id=new.id, execution=new)
            records.append((topics.EXECUTOR, new.id, inp.to_json()))
        if json.dumps(multi, sort_keys=True) != before:
            conn.executemany(
                "INSERT INTO executor_multiple_conditions (key, body) VALUES (?, ?) ON CONFLICT"
                " (key) DO UPDATE SET body = excluded.body",
                [(k, json.dumps(v)) for k, v in multi.items()],
            )
        out.extend(records)
        EXECUTOR_METRICS.ended.labels(state=execution.state.current.value).inc()

    def _flows_with_triggers(self) -> list[Flow]:
        if self._trigger_flows is None:
            found: list[Flow] = []
            for tenant in self._tenants():
                for record in self.flows.find(tenant):
                    try:
                        flow = parse_flow(record.source)
                    except FlowValidationError:
                        continue
                    if any(isinstance(t, FlowTrigger) for t in flow.triggers):
                        found.append(flow)
            self._trigger_flows = found
        return self._trigger_flows

    def _tenants(self) -> list[str]:
        with self.db.lock:
            try:
                rows = self.db.conn.execute("SELECT DISTINCT tenant FROM flows").fetchall()
            except Exception:  # noqa: BLE001 - repository without that table
                return ["main"]
        return [r[0] for r in rows] or ["main"]

    def _side_topics(self) -> int:
        records = self._side.poll(500, timeout=0)
        if not records:
            return 0
        with self.db.transaction() as conn:
            for record in records:
                if record.topic == topics.FLOWS:
                    self._flow_cache.clear()
                    self._trigger_flows = None
                elif record.topic == topics.WORKER_JOBS:
                    if record.value is None:
                        conn.execute(
                            "DELETE FROM executor_worker_jobs WHERE task_run_id = ?", (record.key,)
                        )
                        continue
                    job = WorkerJob.model_validate_json(record.value)
                    conn.execute(
                        "INSERT INTO executor_worker_jobs VALUES (?, ?, ?, ?) ON CONFLICT"
                        " (task_run_id) DO UPDATE SET attempt = excluded.attempt,"
                        " worker_id = excluded.worker_id",
                        (job.task_run_id, job.execution_id, job.attempt, job.worker_id),
                    )
                elif record.topic == topics.WORKERS and record.value is not None:
                    beat = WorkerHeartbeat.model_validate_json(record.value)
                    conn.execute(
                        "INSERT INTO executor_workers VALUES (?, ?, ?) ON CONFLICT (worker_id) DO"
                        " UPDATE SET last_seen = excluded.last_seen, status = excluded.status",
                        (beat.worker_id, beat.date.timestamp(), beat.status),
                    )
            self._side.commit(records)
        return len(records)

    def _emit_due_timers(self) -> None:
        now = self.clock()
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT execution_id, body FROM executor_states WHERE next_wakeup IS NOT NULL AND"
                " next_wakeup <= ?",
                (now.timestamp(),),
            ).fetchall()
        records: list[tuple[str, str | None, bytes | None]] = []
        mono = time.monotonic()
        for execution_id, body in rows:
            wakeups = json.loads(body).get("wakeups") or {}
            for key, when in wakeups.items():
                due = datetime.fromisoformat(when.replace("Z", "+00:00"))
                if due > now:
                    continue
                timer_id = f"timer:{key}:{due.isoformat()}"
                # emitted once; again only if it was not applied after a while (lost batch)
                if mono - self._timers_sent.get(timer_id, -1e9) < 5.0:
                    continue
                self._timers_sent[timer_id] = mono
                timer = Timer(id=timer_id, execution_id=execution_id, key=key)
                records.append((topics.EXECUTOR, execution_id, timer.to_json()))
        if len(self._timers_sent) > 10_000:
            self._timers_sent = {k: v for k, v in self._timers_sent.items() if mono - v < 60}
        self.queue.emit_many(records)

    def _recover_lost_jobs(self) -> None:
        """Jobs held by workers of a previous process: that process died, hand them back."""
        # every job record of the previous process first (more than one poll after a busy run)
        while self._side_topics():
            pass
        local = self.local_worker_ids() if self.local_worker_ids else set()
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT task_run_id, execution_id, attempt, worker_id FROM executor_worker_jobs"
            ).fetchall()
        lost = [r for r in rows if r[3] not in local]
        self._hand_back(lost, "the previous process stopped")

    def _check_dead_workers(self) -> None:
        deadline = time.time() - self.worker_dead_after
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT j.task_run_id, j.execution_id, j.attempt, j.worker_id FROM"
                " executor_worker_jobs j JOIN executor_workers w ON w.worker_id = j.worker_id"
                " WHERE w.last_seen < ? OR w.status = 'DEAD'",
                (deadline,),
            ).fetchall()
        self._hand_back(rows, "it stopped sending heartbeats")

    def _hand_back(self, rows: list[Any], why: str) -> None:
        if not rows:
            return
        records: list[tuple[str, str | None, bytes | None]] = []
        for task_run_id, execution_id, attempt, worker_id in rows:
            log.warning(
                "task run %s lost with worker %s (%s): resubmitting", task_run_id, worker_id, why
            )
            died = WorkerDied(
                id=f"worker-died:{task_run_id}:{attempt}",
                execution_id=execution_id,
                task_run_id=task_run_id,
                attempt=attempt,
                worker_id=worker_id,
            )
            records.append((topics.EXECUTOR, execution_id, died.to_json()))
        with self.db.transaction() as conn:
            conn.executemany(
                "DELETE FROM executor_worker_jobs WHERE task_run_id = ?", [(r[0],) for r in rows]
            )
            self.queue.emit_many(records)
        EXECUTOR_METRICS.resubmitted.inc(len(rows))


__all__ = ["EmbeddedExecutor"]
