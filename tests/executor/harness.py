"""A deterministic, in-memory driver of ``executor.core.step`` for unit and property tests.

It plays the role of the shells and of the workers: runnable tasks are run by their plugin's
``run`` with a minimal context (or by a scripted outcome), time is virtual and advances to the
next wake-up only when nothing else is pending. No threads, no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from common.errors import LannerError
from common.flow import parse_flow
from common.flow.catalog import FlowCatalog
from common.models.execution import Execution
from common.models.flow import Flow
from common.models.messages import (
    ExecutorInput,
    Kill,
    LogEntry,
    NewExecution,
    Restart,
    Resume,
    TaskResult,
    WorkerHeartbeat,
    WorkerJob,
    WorkerTask,
    WorkerTaskResult,
)
from common.models.state import State
from common.plugins.core.triggers import FlowTrigger
from common.plugins.registry import registry
from common.repository.base import FlowRecord
from common.templating import render, render_object, render_typed
from executor import concurrency, flow_triggers, liveness, timers
from executor.core import CoreConfig, step
from executor.state import ExecutorState

START = datetime(2024, 1, 1, 10, 0, 0, tzinfo=UTC)

# (task_id, attempt) -> state; lets tests script outcomes instead of running plugins
Outcome = Callable[[WorkerTask], tuple[State, dict[str, Any] | None, str | None] | None]


class _Ctx:
    def __init__(self, wt: WorkerTask, logs: list[LogEntry], now: datetime) -> None:
        self.wt = wt
        self._logs = logs
        self.now = now
        errs = wt.variables.get("__errorLogs__", [])
        self.functions = {"errorLogs": lambda: errs}

    @property
    def variables(self) -> Mapping[str, Any]:
        return self.wt.variables

    def render(self, value: Any) -> Any:
        if isinstance(value, str):
            return render(value, self.wt.variables, functions=self.functions)
        return render_object(value, self.wt.variables, functions=self.functions)

    def render_typed(self, value: Any) -> Any:
        if isinstance(value, str):
            return render_typed(value, self.wt.variables, functions=self.functions)
        return render_object(value, self.wt.variables, functions=self.functions)

    def log(self, level: str, message: str) -> None:
        tr = self.wt.task_run
        self._logs.append(
            LogEntry(
                namespace=tr.namespace,
                flow_id=tr.flow_id,
                execution_id=tr.execution_id,
                task_id=tr.task_id,
                task_run_id=tr.id,
                timestamp=self.now,
                level=level,  # type: ignore[arg-type]
                message=message,
            )
        )

    def metric(self, name: str, value: float, kind: str = "counter") -> None:
        pass

    def is_killed(self) -> bool:
        return False

    def wait_killed(self, timeout: float) -> bool:
        return False

    @property
    def working_dir(self) -> str:
        return "/tmp"


class _Flows:
    """The deployed sources as a ``FlowRepository`` (one tenant, one revision per flow)."""

    def __init__(self, sources: dict[tuple[str, str], str]) -> None:
        self.sources = sources

    def _record(self, namespace: str, flow_id: str) -> FlowRecord:
        return FlowRecord(
            tenant_id="main",
            namespace=namespace,
            id=flow_id,
            revision=1,
            source=self.sources[(namespace, flow_id)],
            updated=START,
        )

    def get(
        self, tenant_id: str, namespace: str, flow_id: str, revision: int | None = None
    ) -> FlowRecord | None:
        if (namespace, flow_id) not in self.sources:
            return None
        return self._record(namespace, flow_id)

    def find(
        self, tenant_id: str, namespace: str | None = None, q: str | None = None
    ) -> list[FlowRecord]:
        return [self._record(ns, fid) for ns, fid in self.sources]

    def tenants(self) -> list[str]:
        return ["main"]


@dataclass
class Sim:
    flows: dict[tuple[str, str], Flow] = field(default_factory=dict)
    states: dict[str, ExecutorState] = field(default_factory=dict)
    logs: list[LogEntry] = field(default_factory=list)
    config: CoreConfig = field(default_factory=CoreConfig)
    outcome: Outcome | None = None
    now: datetime = START
    inbox: deque[ExecutorInput] = field(default_factory=deque)
    worker_queue: deque[WorkerTask] = field(default_factory=deque)
    steps: int = 0
    hold_workers: bool = False
    slots: dict[str, concurrency.FlowSlots] = field(default_factory=dict)
    windows: flow_triggers.Windows = field(default_factory=flow_triggers.Windows)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    liveness: liveness.Liveness = field(default_factory=liveness.Liveness)
    # the Kafka executor's protocol: the core does not see the slots, it asks the flow agent
    # (``admission_requested``), which answers with a ``Dequeue`` carrying the count
    remote_slots: bool = False

    def __post_init__(self) -> None:
        self.catalog = FlowCatalog(_Flows(self.sources))

    def deploy(self, source: str) -> Flow:
        flow = parse_flow(source)
        self.flows[(flow.namespace, flow.id)] = flow
        self.sources[(flow.namespace, flow.id)] = source
        self.catalog.changed()
        return flow

    def create(
        self,
        namespace: str,
        flow_id: str,
        inputs: dict[str, Any] | None = None,
        execution_id: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> str:
        from common.models.execution import Label

        flow = self.flows[(namespace, flow_id)]
        exec_id = execution_id or f"exec{len(self.states) + len(self.inbox) + 1}"
        all_labels = {**flow.labels, **(labels or {})}
        ex = Execution(
            id=exec_id,
            namespace=namespace,
            flow_id=flow_id,
            inputs=inputs,
            labels=[Label(key=k, value=v) for k, v in all_labels.items()]
            + [Label(key="system.correlationId", value=exec_id)],
        )
        ex.set_state(State.CREATED, self.now)
        self.inbox.append(NewExecution(id=f"new:{exec_id}", execution_id=exec_id, execution=ex))
        return exec_id

    def execution(self, exec_id: str) -> Execution:
        return self.states[exec_id].execution

    def send(self, event: ExecutorInput) -> None:
        self.inbox.append(event)

    def kill(self, exec_id: str) -> None:
        self.send(Kill(id=f"kill:{exec_id}:{self.steps}", execution_id=exec_id))

    def resume(self, exec_id: str, inputs: dict[str, Any] | None = None) -> None:
        self.send(Resume(id=f"resume:{exec_id}:{self.steps}", execution_id=exec_id, inputs=inputs))

    def restart(self, exec_id: str) -> None:
        self.send(Restart(id=f"restart:{exec_id}:{self.steps}", execution_id=exec_id))

    def _apply(self, event: ExecutorInput) -> None:
        state = self.states.get(event.execution_id)
        ex = (
            event.execution
            if isinstance(event, NewExecution)
            else (state.execution if state else None)
        )
        flow = self.catalog.of(ex) if ex is not None else None
        previous = state.execution.state.current if state is not None else None
        slots = None
        if ex is not None and flow is not None and flow.concurrency is not None:
            slots = self.slots.setdefault(
                concurrency.execution_flow_key(ex), concurrency.FlowSlots()
            )
        result = step(
            flow,
            state,
            event,
            self.now,
            self.config,
            running_count=(
                None
                if self.remote_slots
                else concurrency.running_count(slots, event.execution_id)
                if slots
                else 0
            ),
        )
        self.steps += 1
        if result.state is not None:
            self.states[event.execution_id] = result.state
        self.logs.extend(result.logs)
        self.worker_queue.extend(result.worker_tasks)
        self.inbox.extend(result.executor_inputs)
        if result.state is None or not result.changed:
            return
        if slots is not None and flow is not None:
            observe = concurrency.observe_report if self.remote_slots else concurrency.observe
            self.inbox.extend(observe(slots, flow.concurrency, result.state.execution))
            if result.admission_requested:
                self.inbox.append(
                    concurrency.request_admission(slots, flow.concurrency, event.execution_id)
                )
        if result.state.execution.state.current != previous:
            created, _ = flow_triggers.evaluate(
                self.catalog.with_trigger(FlowTrigger),
                result.state.execution,
                previous,
                self.now,
                self.windows,
            )
            self.inbox.extend(
                NewExecution(id=f"new:{new.id}", execution_id=new.id, execution=new)
                for new in created
            )

    def take(self, wt: WorkerTask, worker_id: str = "sim") -> TaskResult:
        """Worker ``worker_id`` takes ``wt`` (job record, heartbeat); returns its RUNNING result."""
        job = WorkerJob(
            task_run_id=wt.task_run.id,
            execution_id=wt.task_run.execution_id,
            attempt=wt.attempt,
            worker_id=worker_id,
            date=self.now,
        )
        liveness.on_job(self.liveness, job.task_run_id, job)
        beat = WorkerHeartbeat(
            worker_id=worker_id, hostname="sim", threads=1, running=1, date=self.now
        )
        liveness.on_heartbeat(self.liveness, beat, self.now)
        return self._work(wt)[0]

    def silence(self, dead_after: timedelta) -> None:
        """Time passes with no heartbeat: the jobs of the silent workers are handed back."""
        self.now += dead_after + timedelta(seconds=1)
        lost = liveness.lost_jobs(self.liveness, self.now, dead_after)
        self.inbox.extend(liveness.worker_died(lost))
        liveness.forget(self.liveness, lost)

    def _work(self, wt: WorkerTask) -> list[TaskResult]:
        tr = wt.task_run

        def result(
            state: State, outputs: dict[str, Any] | None = None, error: str | None = None
        ) -> TaskResult:
            res = WorkerTaskResult(
                execution_id=tr.execution_id,
                task_run_id=tr.id,
                attempt=wt.attempt,
                state=state,
                outputs=outputs,
                error=error,
                worker_id="sim",
                date=self.now,
            )
            return TaskResult(id=res.input_id, execution_id=tr.execution_id, result=res)

        out = [result(State.RUNNING)]
        scripted = self.outcome(wt) if self.outcome else None
        if scripted is not None:
            out.append(result(*scripted))
            return out
        cls = registry().get(wt.task["type"])
        assert cls is not None, wt.task["type"]
        ctx = _Ctx(wt, self.logs, self.now)
        try:
            task = cls.model_validate(wt.task)
            outputs = task.run(ctx)  # type: ignore[attr-defined]
            final = getattr(outputs, "final_state", None)
            out.append(
                result(State(final) if final else State.SUCCESS, dict(outputs) if outputs else None)
            )
        except (LannerError, Exception) as exc:  # noqa: BLE001 - a task failure, like the worker
            message = getattr(exc, "message", None) or str(exc)
            ctx.log("ERROR", message)
            out.append(result(State.FAILED, getattr(exc, "outputs", None), message))
        return out

    def run(self, max_steps: int = 100_000, until: Callable[[], bool] | None = None) -> None:
        """Process until nothing is pending (advancing virtual time to wake-ups) or ``until``."""
        while self.steps < max_steps:
            if until is not None and until():
                return
            if self.inbox:
                self._apply(self.inbox.popleft())
                continue
            if self.worker_queue and not self.hold_workers:
                self.inbox.extend(self._work(self.worker_queue.popleft()))
                continue
            first = timers.earliest((eid, s.wakeups) for eid, s in self.states.items())
            if first is None:
                return
            when, timer = first
            if when > self.now:
                self.now = when
            self.inbox.append(timer)
        raise AssertionError(f"simulation did not settle after {max_steps} steps")

    def advance(self, delta: timedelta) -> None:
        self.now += delta
