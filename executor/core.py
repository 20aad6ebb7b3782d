"""The executor's orchestration logic, as one pure function.

``step(flow, state, event, now, config)`` applies one executor input to an execution and
returns the new state and the messages to send. It reads no clock, does no I/O and keeps no
global state: the Faust and embedded shells decode, load the state, call ``step``, store and
emit. Ids it creates derive from the input id, so processing the same input twice gives the
same result, and an input already applied changes nothing.

A task or template error becomes a FAILED task run with an ERROR log, never an exception.
Templates rendered here get a ``RenderContext``: ``now()`` is the step's ``now``, ``uuid()`` and
``randomInt()`` are seeded, and ``secret()`` and the file functions, which need a worker, fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from common.errors import InputValidationError, LannerError
from common.executions import set_labels
from common.flow import flowable_utils as fu
from common.flow import retries
from common.ids import derived_id
from common.models.base import WireModel
from common.models.execution import Attempt, Execution, ExecutionTrigger, Label, TaskRun
from common.models.flow import Flow, Sla
from common.models.messages import (
    Dequeue,
    ExecutorInput,
    Kill,
    KillOrder,
    LogEntry,
    ManualPause,
    NewExecution,
    Restart,
    Resume,
    SetLabels,
    SubflowEnded,
    TaskResult,
    Timer,
    WorkerDied,
    WorkerTask,
    WorkerTaskResult,
)
from common.models.state import State
from common.plugins.base import (
    ExecutableTask,
    ExecutorTask,
    FlowableTask,
    ResolvedTask,
    Retry,
    RunnableTask,
    Task,
    parse_duration,
)
from common.plugins.core.flowable import (
    EXIT_STATES,
    Exit,
    ForEachItemExecutable,
    ForEachItemMergeOutputs,
    Labels,
    Pause,
    Subflow,
    WorkingDirectory,
)
from common.plugins.core.flowable import Resume as ResumeTask
from common.plugins.core.flowable.foreachitem import (
    SUBFLOW_OUTPUTS_VARIABLE,
    batch_uris,
    terminal_state,
)
from common.plugins.core.flowable.workingdir import RETRY_VARIABLE
from common.plugins.dynamic import resolve, resolve_model
from common.templating import RenderContext, is_true, render, render_object, render_typed
from common.templating._functions import kv_function

from ._variables import VariableBuilder, nest_dotted
from .concurrency import admit
from .kv import KVRead, snapshot_reader
from .state import MAX_APPLIED, ExecutorState

log = logging.getLogger("lanner.executor")
_M = TypeVar("_M", bound=WireModel)
SUBFLOW_TRIGGER_TYPE = "io.kestra.plugin.core.flow.Subflow"
_MAX_PASSES = 1000


@dataclass(frozen=True)
class CoreConfig:
    """Process-wide values templates see (Kestra's ``globals`` and ``envs``)."""

    globals: Mapping[str, Any] = field(default_factory=dict)
    envs: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StepResult:
    state: ExecutorState | None
    worker_tasks: list[WorkerTask] = field(default_factory=list)
    # inputs for other (or new) executions: subflows, subflow ends, resumes, retries
    executor_inputs: list[ExecutorInput] = field(default_factory=list)
    kill_orders: list[KillOrder] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
    changed: bool = False
    ended: bool = False
    # the execution waits for its flow's concurrency slots (``running_count`` was None): the
    # shell asks the flow's slot keeper, whose answer comes back as a ``Dequeue``
    admission_requested: bool = False
    # ``kv()`` keys a render needed that the ``kv`` snapshot did not hold (``executor.kv``)
    kv_missing: set[tuple[str, str]] = field(default_factory=set)


def _same_tenant(event: ExecutorInput, execution: Execution) -> bool:
    """An order that names a tenant (``Kill``, ``Restart``, ``Resume`` sent unchecked while the
    repository is down: the webserver authorized the tenant, not the execution id) applies only
    to an execution of that tenant; another tenant's is left alone (issue 13)."""
    tenant = getattr(event, "tenant_id", None)
    if tenant is None or tenant == (execution.tenant_id or "main"):
        return True
    log.warning(
        "%s %s for execution %s ignored: it names tenant %r, the execution is of another",
        type(event).__name__,
        event.id,
        execution.id,
        tenant,
    )
    return False


def step(
    flow: Flow | None,
    state: ExecutorState | None,
    event: ExecutorInput,
    now: datetime,
    config: CoreConfig | None = None,
    *,
    running_count: int | None = 0,
    owned: bool = False,
    kv: Mapping[tuple[str, str], KVRead] | None = None,
) -> StepResult:
    """Apply ``event`` to the execution held in ``state``.

    ``running_count`` is the number of other executions of the flow currently running; the
    shell provides it so the core can apply the flow's ``concurrency`` limit. ``None``: the
    shell does not hold the flow's slots (the Kafka executor's flow agent does); an execution
    that needs a slot then stays CREATED and ``admission_requested`` is set, and the slot
    keeper's ``Dequeue`` carries the count.

    ``state`` and ``event`` are left unchanged, unless ``owned``: the caller hands them over
    and never reads them again, so the new state is made from them in place instead of from a
    copy (copying the whole execution was a quarter of the embedded executor's time). The
    result is the same either way; ``changed`` tells whether the input was applied.

    ``kv``: the KV entries ``kv()`` may read, by (namespace, key); None: ``kv()`` fails as a
    worker-only function. A key not in it reads as missing and is listed in ``kv_missing``
    (``executor.kv.step_with_kv`` reads those and steps again).
    """
    if state is not None and event.id in state.applied:
        return StepResult(state=state)
    if isinstance(event, NewExecution):
        if state is not None:
            return StepResult(state=state)
        state = ExecutorState(execution=event.execution if owned else _copy(event.execution))
    elif state is None:
        if not isinstance(event, SetLabels) or event.execution is None:
            return StepResult(state=None)
        # an ended execution this executor no longer holds: its stored copy takes the labels
        state = ExecutorState(execution=_copy(event.execution))
    elif not owned:
        state = _copy(state)
    if not _same_tenant(event, state.execution):
        return StepResult(state=state)
    was_terminal = state.execution.state.current.terminal
    core = _Core(flow, state, now, config or CoreConfig(), event.id, kv)
    core.apply(event, running_count)
    core.process()
    state.applied.append(event.id)
    if len(state.applied) > MAX_APPLIED:
        del state.applied[: len(state.applied) - MAX_APPLIED]
    result = core.result
    result.state = state
    result.changed = True
    state.execution.sequence += 1
    result.ended = state.execution.state.current.terminal and not was_terminal
    if result.ended:
        core.on_end()
    return result


def fail(
    flow: Flow | None,
    state: ExecutorState,
    message: str,
    now: datetime,
    config: CoreConfig | None = None,
) -> StepResult:
    """End the execution FAILED because its shell could not apply an input to it.

    A defect must not stall every other execution behind one input: the shell isolates the
    input that keeps failing and ends its execution with an ERROR log instead.
    """
    state = _copy(state)
    core = _Core(flow, state, now, config or CoreConfig(), f"fail:{now.isoformat()}")
    result = core.result
    result.state = state
    if state.execution.state.current.terminal:
        return result
    core.fail_execution(message)
    result.kill_orders.append(
        KillOrder(execution_id=state.execution.id, sequence=state.execution.sequence)
    )
    state.wakeups.clear()
    state.execution.sequence += 1
    result.changed = True
    result.ended = True
    core.on_end()
    return result


class _Core:
    def __init__(
        self,
        flow: Flow | None,
        state: ExecutorState,
        now: datetime,
        config: CoreConfig,
        seed: str,
        kv: Mapping[tuple[str, str], KVRead] | None = None,
    ) -> None:
        self.flow = flow
        self.kv = kv
        self.state = state
        self.ex: Execution = state.execution
        self.now = now
        self.config = config
        self.seed = seed
        self.counter = 0
        self.result = StepResult(state=state)
        self.tasks: dict[str, Task] = {t.id: t for t in flow.all_tasks()} if flow else {}
        self._root: tuple[list[ResolvedTask], list[ResolvedTask], list[ResolvedTask]] | None = None
        self.vars = (
            VariableBuilder(flow, self.ex, config.globals, config.envs, _input_defaults(flow))
            if flow
            else None
        )

    # ------------------------------------------------------------------ ids, logs, render
    def new_id(self) -> str:
        self.counter += 1
        return derived_id(self.seed, str(self.counter))

    def log(self, level: str, message: str, task_run: TaskRun | None = None) -> None:
        self.result.logs.append(
            LogEntry(
                tenant_id=self.ex.tenant_id,
                namespace=self.ex.namespace,
                flow_id=self.ex.flow_id,
                execution_id=self.ex.id,
                task_id=task_run.task_id if task_run else None,
                task_run_id=task_run.id if task_run else None,
                attempt_number=len(task_run.attempts) if task_run else None,
                timestamp=self.now,
                level=level,  # type: ignore[arg-type]
                thread="executor",
                message=message,
            )
        )

    def variables(self, task_run: TaskRun | None) -> dict[str, Any]:
        assert self.vars is not None
        task = self.tasks.get(task_run.task_id) if task_run else None
        return self.vars.for_task_run(task, task_run)

    def render_context(self, task_run: TaskRun | None, value: Any) -> RenderContext:
        """The step's ``now``; ``uuid()``/``randomInt()`` seeded by the execution, the task run
        (its id derives from the input that created it) and the property rendered, not by the
        current input: a flowable renders its condition or values again at every input and
        must get the same ones (a ForEach over ``uuid()``s would create children forever)."""
        return RenderContext(self.now, self.ex.id, task_run.id if task_run else None, value)

    def functions(self, task_run: TaskRun | None, value: Any) -> dict[str, Any]:
        assert self.vars is not None
        logs = self.vars.error_logs
        return {**self.base_functions(task_run, value), "errorLogs": logs}

    def base_functions(self, task_run: TaskRun | None, value: Any) -> dict[str, Any]:
        functions = self.render_context(task_run, value).functions()
        if self.kv is not None:
            read = snapshot_reader(self.kv, self.ex.namespace, self.result.kv_missing)
            functions["kv"] = kv_function(read)
        return functions

    def render(self, value: Any, task_run: TaskRun | None = None) -> Any:
        functions = self.functions(task_run, value)
        if isinstance(value, str):
            return render(value, self.variables(task_run), functions=functions)
        return render_object(value, self.variables(task_run), functions=functions)

    def render_typed(self, value: Any, task_run: TaskRun | None = None) -> Any:
        functions = self.functions(task_run, value)
        if isinstance(value, str):
            return render_typed(value, self.variables(task_run), functions=functions)
        return render_object(value, self.variables(task_run), functions=functions)

    def renderer(self, task_run: TaskRun | None) -> Callable[[str], Any]:
        return lambda value: self.render_typed(value, task_run)

    def resolved(self, value: Any, task_run: TaskRun | None, default: Any) -> Any:
        """A typed property that may be a template; a bad value is logged and gives
        ``default`` (where the task run is ending anyway and cannot fail on it)."""
        try:
            return resolve(value, self.renderer(task_run))
        except LannerError as exc:
            self.log("ERROR", str(exc), task_run)
            return default

    def resolved_retry(self, policy: Retry, task_run: TaskRun | None) -> Retry | None:
        try:
            return resolve_model(policy, self.renderer(task_run))
        except LannerError as exc:
            self.log("ERROR", f"retry: {exc}", task_run)
            return None

    def children(self, parent: TaskRun) -> list[TaskRun]:
        return [tr for tr in self.ex.task_run_list if tr.parent_task_run_id == parent.id]

    def wake_at(self, task_run: TaskRun, when: datetime) -> None:
        self.state.wakeups[f"wake:{task_run.id}"] = when

    @property
    def execution(self) -> Execution:
        return self.ex

    # ------------------------------------------------------------------ state changes
    def touched(self) -> None:
        if self.vars is not None:
            self.vars.invalidate()

    def set_state(self, target: TaskRun | Execution, state: State) -> None:
        if target.state.current != state:
            target.set_state(state, self.now)
            self.touched()

    def fail_execution(self, message: str) -> None:
        self.log("ERROR", message)
        for tr in self.ex.task_run_list:
            if not tr.state.current.terminal:
                self.set_state(tr, State.FAILED)
        self.set_state(self.ex, State.FAILED)

    # ------------------------------------------------------------------ inputs
    def apply(self, event: ExecutorInput, running_count: int | None) -> None:
        if isinstance(event, NewExecution):
            self.start(event, running_count)
        elif isinstance(event, SetLabels):
            # any state, ended ones too (the webserver applies Kestra's rule on which)
            self.ex.labels = set_labels(self.ex.labels, event.labels)
            self.touched()
        elif self.ex.state.current.terminal and not isinstance(event, Restart):
            return  # late results of an ended execution change nothing
        elif isinstance(event, TaskResult):
            self.on_result(event)
        elif isinstance(event, Kill):
            self.kill(State.KILLED)
        elif isinstance(event, Resume):
            self.resume(event)
        elif isinstance(event, SubflowEnded):
            self.on_subflow_ended(event)
        elif isinstance(event, Restart):
            self.restart()
        elif isinstance(event, ManualPause):
            if self.ex.state.current == State.RUNNING:
                self.state.manual_pause = True
                self.set_state(self.ex, State.PAUSED)
        elif isinstance(event, WorkerDied):
            self.on_worker_died(event)
        elif isinstance(event, Dequeue):
            if event.running_count is not None:
                running_count = event.running_count  # counted by the slot keeper
            waiting = self.ex.state.current == State.QUEUED or (
                self.ex.state.current == State.CREATED and self.state.awaiting_admission
            )
            if waiting and self.flow is not None:
                self.state.awaiting_admission = False
                self.begin(running_count)  # admitted like a new execution: limit, SLA
        elif isinstance(event, Timer):
            self.state.wakeups.pop(event.key, None)
            if event.key == "start:":
                if self.ex.state.current == State.CREATED and self.flow is not None:
                    self.begin(running_count)
            else:
                self.on_timer(event.key)

    def start(self, event: NewExecution, running_count: int | None) -> None:
        if self.flow is None:
            self.fail_execution(
                f"Flow {self.ex.namespace}.{self.ex.flow_id} not found: deploy it, then create "
                "the execution again"
            )
            return
        if self.ex.state.current == State.RESTARTED:
            self.set_state(self.ex, State.RUNNING)  # a replay arrives RESTARTED: carry on
            return
        if self.ex.state.current != State.CREATED:
            return
        if self.ex.trigger is not None and self.ex.trigger.type == SUBFLOW_TRIGGER_TYPE:
            # the parent did not know the child flow: its labels join now (Kestra's newExecution)
            present = {lb.key for lb in self.ex.labels}
            extra = [Label(key=k, value=v) for k, v in self.flow.labels.items() if k not in present]
            if extra:
                self.ex.labels = [*self.ex.labels, *extra]
                self.touched()
        if event.validate_inputs:
            from common.flow.inputs import validate_inputs

            try:
                self.ex.inputs = validate_inputs(self.flow, self.ex.inputs or {})
            except InputValidationError as exc:
                self.fail_execution(str(exc))
                return
            self.touched()
        if self.flow.disabled:
            self.fail_execution(f"Flow {self.flow.namespace}.{self.flow.id} is disabled")
            return
        if self.ex.schedule_date is not None and self.ex.schedule_date > self.now:
            self.state.wakeups["start:"] = self.ex.schedule_date
            return
        self.begin(running_count)

    def begin(self, running_count: int | None) -> None:
        assert self.flow is not None
        limit = self.flow.concurrency
        if limit is not None and running_count is None:
            self.state.awaiting_admission = True
            self.result.admission_requested = True
            return
        admitted = admit(limit, running_count or 0)
        if admitted == State.FAILED and limit is not None:
            self.fail_execution(
                f"Flow is limited to {limit.limit} concurrent execution(s): execution failed"
            )
            return
        if admitted != State.RUNNING:
            self.set_state(self.ex, admitted)
            return
        self.set_state(self.ex, State.RUNNING)
        for sla in self.flow.sla:
            if sla.type == "MAX_DURATION" and sla.duration:
                due = self.now + (parse_duration(sla.duration) or timedelta())
                self.state.wakeups[f"sla:{sla.id}"] = due

    def on_result(self, event: TaskResult) -> None:
        res = event.result
        tr = self.ex.find_task_run(res.task_run_id)
        if tr is None and res.task_run is not None:
            tr = self.add_worker_child(res.task_run)
        if tr is None or tr.state.current.terminal:
            return
        if res.attempt == len(tr.attempts) + 1 and self.next_worker_attempt(tr, res):
            return
        if res.attempt != len(tr.attempts):
            return
        attempt = tr.attempts[-1]
        if attempt.state.current.terminal:
            return
        if res.worker_id and attempt.worker_id and res.worker_id != attempt.worker_id:
            return  # the attempt is claimed by another worker: this one is a zombie
        if res.worker_id:
            attempt.worker_id = res.worker_id
        if res.state == State.RUNNING:
            attempt.set_state(State.RUNNING, self.now)
            self.set_state(tr, State.RUNNING)
            return
        if res.state == State.RETRYING and self.in_working_directory(tr):
            # the worker retries it in the directory (``next_worker_attempt``)
            attempt.set_state(State.FAILED, self.now)
            tr.error = res.error or tr.error
            self.set_state(tr, State.FAILED)
            self.set_state(tr, State.RETRYING)
            self.touched()
            return
        attempt.set_state(res.state, self.now)
        if res.outputs is not None:
            tr.outputs = res.outputs
        if res.error:
            tr.error = res.error
        self.touched()
        if isinstance(self.tasks.get(tr.task_id), WorkingDirectory):
            return  # the worker is done with it: ended like a Sequential by process()
        # a WorkingDirectory's child is not retried alone, away from its directory
        self.end_task_run(tr, res.state, retry=not self.in_working_directory(tr))

    def next_worker_attempt(self, tr: TaskRun, res: WorkerTaskResult) -> bool:
        """A WorkingDirectory's task that its worker retries (reported RETRYING) starts its
        next attempt: True if ``res`` was that start."""
        if res.state != State.RUNNING or tr.state.current != State.RETRYING:
            return False
        if not self.in_working_directory(tr):
            return False
        last = tr.attempts[-1].worker_id if tr.attempts else None
        if res.worker_id and last and res.worker_id != last:
            return True  # another worker's: a zombie's, ignored
        attempt = Attempt(worker_id=res.worker_id)
        attempt.set_state(State.RUNNING, self.now)
        tr.attempts.append(attempt)
        self.set_state(tr, State.RUNNING)
        self.touched()
        return True

    def in_working_directory(self, tr: TaskRun) -> bool:
        parent = self.ex.find_task_run(tr.parent_task_run_id) if tr.parent_task_run_id else None
        return parent is not None and isinstance(self.tasks.get(parent.task_id), WorkingDirectory)

    def add_worker_child(self, child: TaskRun) -> TaskRun | None:
        """A task run a worker created inside the WorkingDirectory it runs (Kestra's
        ``addDynamicTaskRun``); None if it does not belong to a running one."""
        parent_id = child.parent_task_run_id
        parent = self.ex.find_task_run(parent_id) if parent_id else None
        task = self.tasks.get(parent.task_id) if parent is not None else None
        if (
            parent is None
            or parent.state.current.terminal
            or not isinstance(task, WorkingDirectory)
        ):
            return None
        if child.task_id not in {t.id for t in task.tasks} or child.execution_id != self.ex.id:
            return None
        tr = TaskRun(
            id=child.id,
            execution_id=self.ex.id,
            namespace=self.ex.namespace,
            flow_id=self.ex.flow_id,
            task_id=child.task_id,
            parent_task_run_id=parent.id,
        )
        tr.set_state(State.CREATED, self.now)
        attempt = Attempt()
        attempt.set_state(State.CREATED, self.now)
        tr.attempts.append(attempt)
        self.ex.task_run_list.append(tr)
        self.touched()
        return tr

    def on_worker_died(self, event: WorkerDied) -> None:
        tr = self.ex.find_task_run(event.task_run_id)
        if tr is None or tr.state.current.terminal or event.attempt != len(tr.attempts):
            return
        attempt = tr.attempts[-1]
        if attempt.state.current.terminal:
            return
        attempt.set_state(State.FAILED, self.now)
        self.log("WARN", f"worker {event.worker_id} died: task resubmitted", tr)
        if isinstance(self.tasks.get(tr.task_id), WorkingDirectory):
            self.drop_children(tr)  # they run again, in a new directory
        if self.ex.state.current == State.KILLING:
            self.set_state(tr, State.KILLED)
        else:
            self.set_state(tr, State.CREATED)  # resubmitted as a new attempt by process()

    def drop_children(self, parent: TaskRun) -> None:
        kept = [t for t in self.ex.task_run_list if t.parent_task_run_id != parent.id]
        if len(kept) != len(self.ex.task_run_list):
            self.ex.task_run_list = kept
            self.touched()

    def kill(self, final: State) -> None:
        if self.ex.state.current.terminal or self.ex.state.current == State.KILLING:
            return
        self.state.manual_pause = False
        self.state.kill_state = final
        self.set_state(self.ex, State.KILLING)
        self.result.kill_orders.append(
            KillOrder(execution_id=self.ex.id, sequence=self.ex.sequence)
        )
        for tr in self.ex.task_run_list:
            if tr.state.current.terminal:
                continue
            task = self.tasks.get(tr.task_id)
            running_on_worker = (
                isinstance(task, RunnableTask)
                and tr.attempts
                and tr.attempts[-1].state.current in (State.CREATED, State.RUNNING)
                and tr.state.current != State.RETRYING
            )
            for child in self.batch_children(tr, task):
                self.result.executor_inputs.append(Kill(id=f"kill:{child}", execution_id=child))
            if isinstance(task, ExecutableTask) and tr.outputs and tr.outputs.get("executionId"):
                child = tr.outputs["executionId"]
                self.result.executor_inputs.append(Kill(id=f"kill:{child}", execution_id=child))
                self.set_state(tr, State.KILLED)
            elif not running_on_worker and not isinstance(task, FlowableTask):
                self.set_state(tr, State.KILLED)
            elif isinstance(task, Pause) and tr.state.current == State.PAUSED:
                self.set_state(tr, State.KILLED)

    def resume(self, event: Resume) -> None:
        paused = [
            tr
            for tr in self.ex.task_run_list
            if tr.state.current == State.PAUSED
            and (event.task_run_id is None or tr.id == event.task_run_id)
        ]
        if not paused:
            if self.state.manual_pause and event.task_run_id is None:
                self.state.manual_pause = False
                self.set_state(self.ex, State.RUNNING)
            return
        tr = paused[0]
        task = self.tasks.get(tr.task_id)
        resumed: dict[str, Any] = dict(event.inputs or {})
        if isinstance(task, Pause) and task.on_resume and self.flow is not None:
            from common.flow.inputs import validate_inputs

            shadow = self.flow.model_copy(update={"inputs": task.on_resume})
            try:
                resumed = validate_inputs(shadow, resumed)
            except InputValidationError as exc:
                self.log("ERROR", f"Invalid resume inputs: {exc}", tr)
                return
        tr.outputs = {**(tr.outputs or {}), "onResume": resumed}
        self.resume_task_run(tr)

    def resume_task_run(self, tr: TaskRun) -> None:
        self.state.wakeups.pop(f"pause-resume:{tr.id}", None)
        self.state.wakeups.pop(f"pause-timeout:{tr.id}", None)
        self.set_state(tr, State.RUNNING)

    def on_subflow_ended(self, event: SubflowEnded) -> None:
        tr = self.ex.find_task_run(event.task_run_id)
        if tr is None or tr.state.current.terminal:
            return
        if (tr.outputs or {}).get("executionId", event.child_execution_id) != (
            event.child_execution_id
        ):
            return  # the subflow execution of an earlier attempt
        task = self.tasks.get(tr.task_id)
        if isinstance(task, ForEachItemExecutable):
            self.on_batch_ended(tr, task, event)
            return
        outputs: dict[str, Any] = {
            "executionId": event.child_execution_id,
            "state": event.state.value,
        }
        flow_outputs = dict(event.outputs or {})
        if isinstance(task, Subflow) and task.outputs and event.variables is not None:
            try:
                functions = self.base_functions(tr, task.outputs)
                rendered = render_object(task.outputs, event.variables, functions=functions)
                flow_outputs.update(rendered)
            except LannerError as exc:
                tr.outputs = outputs
                self.end_attempt(tr, State.FAILED)
                self.fail_task_run(tr, f"Unable to render the subflow outputs: {exc}")
                return
        if flow_outputs:
            outputs["outputs"] = flow_outputs
        tr.outputs = outputs
        self.touched()
        state = event.state
        if state in (State.FAILED, State.KILLED, State.CANCELLED) and isinstance(task, Subflow):
            try:
                transmit_failed = resolve(task.transmit_failed, self.renderer(tr))
            except LannerError as exc:
                self.fail_task_run(tr, str(exc))
                return
            state = State.FAILED if transmit_failed else State.SUCCESS
            if event.state == State.KILLED and transmit_failed:
                state = State.KILLED
        self.end_attempt(tr, state)
        self.end_task_run(tr, state)

    def end_attempt(self, tr: TaskRun, state: State) -> None:
        """End the attempt a subflow execution ran, so that a retry can start the next one."""
        if tr.attempts and not tr.attempts[-1].state.current.terminal:
            tr.attempts[-1].set_state(state, self.now)

    def on_timer(self, key: str) -> None:
        kind, _, target = key.partition(":")
        if kind == "sla" and self.flow is not None:
            sla = next((s for s in self.flow.sla if s.id == target), None)
            if sla is None or self.ex.state.current.terminal:
                return
            final = self.breach(sla, f"the execution ran longer than {sla.duration}")
            if final is not None:
                self.kill(final)
        elif kind == "pause-resume":
            tr = self.ex.find_task_run(target)
            if tr is not None and tr.state.current == State.PAUSED:
                self.resume_task_run(tr)
        elif kind == "pause-timeout":
            tr = self.ex.find_task_run(target)
            if tr is not None and tr.state.current == State.PAUSED:
                self.state.wakeups.pop(f"pause-resume:{tr.id}", None)
                task = self.tasks.get(tr.task_id)
                behavior = task.behavior if isinstance(task, Pause) else None
                self.log("WARN", "Pause timed out", tr)
                target_state = {
                    "RESUME": State.RUNNING,
                    "WARN": State.WARNING,
                    "CANCEL": State.CANCELLED,
                }.get(behavior or "FAIL", State.FAILED)
                if target_state == State.RUNNING:
                    self.resume_task_run(tr)
                else:
                    self.end_task_run(tr, target_state)

    def restart(self) -> None:
        """Kestra's ``ExecutionService.restart``: any ended execution holding a FAILED (here
        also KILLED) task run restarts from those task runs and their ancestors (a WARNING
        execution whose failure an AllowFailure absorbed, too). A PAUSED execution restarts
        from its PAUSED task runs: they run again as RUNNING and, having been PAUSED once, do
        not pause again (Kestra's ``Pause.needPause``), so the execution carries on."""
        if self.ex.state.current == State.PAUSED:
            self.restart_paused()
            return
        if not self.ex.state.current.terminal:
            return
        failed = [
            tr for tr in self.ex.task_run_list if tr.state.current in (State.FAILED, State.KILLED)
        ]
        if not failed:
            return  # nothing to restart from (the webserver refuses it: Kestra's 422)
        ids = {tr.id for tr in failed}
        ancestors = [
            parent
            for tr in failed
            for parent in fu.parents(self.ex, tr)
            if parent.id not in ids and parent.state.current.terminal
        ]
        for parent in ancestors:
            if parent.id not in ids:  # an ended container of a failure it absorbed: runs again
                ids.add(parent.id)
                failed.insert(0, parent)
        restarted: set[str] = set()
        directories = [
            tr for tr in failed if isinstance(self.tasks.get(tr.task_id), WorkingDirectory)
        ]
        for directory in directories:  # runs again as a whole, on one worker
            inside = {t.id for t in self.ex.task_run_list if t.parent_task_run_id == directory.id}
            failed = [t for t in failed if t.id not in inside]
            self.drop_children(directory)
        for tr in failed:
            task = self.tasks.get(tr.task_id)
            self.set_state(tr, State.RESTARTED)
            restarted.add(tr.id)
            if isinstance(task, WorkingDirectory):
                tr.outputs = None
                tr.error = None
                self.set_state(tr, State.CREATED)
            elif isinstance(task, FlowableTask):
                self.set_state(tr, State.RUNNING)
            else:
                tr.outputs = None
                tr.error = None
                self.set_state(tr, State.CREATED)
        # drop the error branches that ran because of those failures: they will run again if needed
        keep: list[TaskRun] = []
        dropped: set[str] = set()
        error_ids = self._error_branch_task_ids()
        for tr in self.ex.task_run_list:
            parent_dropped = tr.parent_task_run_id in dropped
            if parent_dropped or (tr.task_id in error_ids and tr.id not in restarted):
                dropped.add(tr.id)
                continue
            keep.append(tr)
        self.ex.task_run_list = keep
        self.state.kill_state = None
        self.ex.metadata.attempt_number += 1
        self.set_state(self.ex, State.RESTARTED)
        self.set_state(self.ex, State.RUNNING)

    def restart_paused(self) -> None:
        paused = [tr for tr in self.ex.task_run_list if tr.state.current == State.PAUSED]
        if not paused:
            return  # a manual pause holds no task run: Kestra's 422, refused by the webserver
        for tr in paused:
            self.set_state(tr, State.RESTARTED)
            self.resume_task_run(tr)
        self.state.manual_pause = False
        self.ex.metadata.attempt_number += 1
        self.set_state(self.ex, State.RESTARTED)
        self.set_state(self.ex, State.RUNNING)

    def _error_branch_task_ids(self) -> set[str]:
        if self.flow is None:
            return set()
        ids: set[str] = set()

        def collect(tasks: list[Task]) -> None:
            for t in tasks:
                ids.add(t.id)
                for child in getattr(t, "all_child_tasks", lambda: [])():
                    collect([child])

        collect(self.flow.errors)
        for task in self.flow.all_tasks():
            collect(list(getattr(task, "errors", None) or []))
        return ids

    # ------------------------------------------------------------------ processing
    def process(self) -> None:
        if self.flow is None:
            return
        for _ in range(_MAX_PASSES):
            if (
                self.ex.state.current.terminal
                or self.ex.state.current in (State.QUEUED, State.CREATED)
                or self.state.manual_pause
            ):
                return
            changed = self.process_task_runs()
            changed = self.process_root() or changed
            if not changed:
                break
        self.sync_paused()

    def sync_paused(self) -> None:
        if self.ex.state.current.terminal or self.ex.state.current == State.KILLING:
            return
        paused = any(tr.state.current == State.PAUSED for tr in self.ex.task_run_list)
        if paused and self.ex.state.current == State.RUNNING:
            self.set_state(self.ex, State.PAUSED)
        elif not paused and self.ex.state.current == State.PAUSED:
            self.set_state(self.ex, State.RUNNING)

    def process_task_runs(self) -> bool:
        changed = False
        killing = self.ex.state.current == State.KILLING
        for tr in list(self.ex.task_run_list):
            if self.ex.state.current.terminal:
                break  # ended by an Exit task
            task = self.tasks.get(tr.task_id)
            current = tr.state.current
            if current.terminal:
                continue
            if task is None:
                self.fail_task_run(tr, f"task '{tr.task_id}' no longer exists in the flow")
                changed = True
                continue
            if killing and current in (State.CREATED, State.RETRYING, State.RESTARTED):
                if not (
                    isinstance(task, RunnableTask)
                    and tr.attempts
                    and tr.attempts[-1].state.current in (State.CREATED, State.RUNNING)
                ):
                    self.set_state(tr, State.KILLED)
                    changed = True
                    continue
            if current == State.CREATED and not self.submitted(tr):
                self.start_task_run(tr, task)
                changed = True
            elif (
                current == State.RETRYING
                and not killing
                and not self.submitted(tr)
                and not self.in_working_directory(tr)  # its worker runs the next attempt
            ):
                if tr.next_date is None or self.now >= tr.next_date:
                    if isinstance(task, Subflow):
                        self.start_subflow(tr, task)
                    else:
                        self.submit(tr, task)
                    changed = True
            elif current == State.RUNNING and isinstance(task, FlowableTask):
                changed = self.resolve_flowable(tr, task) or changed
        return changed

    @staticmethod
    def submitted(tr: TaskRun) -> bool:
        return bool(tr.attempts) and not tr.attempts[-1].state.current.terminal

    def start_task_run(self, tr: TaskRun, task: Task) -> None:
        if task.run_if is not None and not tr.attempts:
            try:
                condition = task.run_if
                rendered = (
                    self.render(condition, tr) if isinstance(condition, str) else str(condition)
                )
            except LannerError as exc:
                self.fail_task_run(tr, f"runIf of '{task.id}' could not be rendered: {exc}")
                return
            if not is_true(rendered):
                self.set_state(tr, State.SKIPPED)
                return
        if isinstance(task, RunnableTask):
            self.submit(tr, task)
        elif isinstance(task, Pause):
            self.set_state(tr, State.RUNNING)
            if tr.outputs is None or "onResume" not in tr.outputs:
                try:
                    delay = task.resume_after(self.renderer(tr))
                    timeout = task.fail_after(self.renderer(tr))
                except LannerError as exc:
                    self.fail_task_run(tr, str(exc))
                    return
                self.set_state(tr, State.PAUSED)
                if delay is not None:
                    self.state.wakeups[f"pause-resume:{tr.id}"] = self.now + delay
                if timeout is not None:
                    self.state.wakeups[f"pause-timeout:{tr.id}"] = self.now + timeout
        elif isinstance(task, WorkingDirectory):
            self.set_state(tr, State.RUNNING)
            self.submit(tr, task)  # the whole directory runs on one worker
        elif isinstance(task, FlowableTask):
            self.set_state(tr, State.RUNNING)
        elif isinstance(task, ExecutableTask):
            self.start_subflow(tr, task)
        elif isinstance(task, ExecutorTask):
            self.apply_executor_task(tr, task)
        else:
            self.fail_task_run(tr, f"task type '{task.type}' cannot be run")

    def submit(self, tr: TaskRun, task: Task) -> None:
        attempt = Attempt()
        attempt.set_state(State.CREATED, self.now)
        tr.attempts.append(attempt)
        tr.next_date = None
        variables = self.variables(tr)
        variables["__errorLogs__"] = self.vars.error_logs() if self.vars else []
        if isinstance(task, WorkingDirectory):
            variables["__valuesPath__"] = fu.values_path(self.ex, tr)
            inherited = self.retry_policy(tr, task)  # what its tasks without a retry follow
            if inherited is not None:
                variables[RETRY_VARIABLE] = inherited.model_dump(
                    mode="json", by_alias=True, exclude_defaults=True
                ) | {"type": inherited.type}
        if isinstance(task, ForEachItemMergeOutputs):
            variables[SUBFLOW_OUTPUTS_VARIABLE] = self.batch_outputs(tr, task)
        self.result.worker_tasks.append(
            WorkerTask(
                task_run=_copy(tr),
                task=task.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                | {"id": task.id, "type": task.type},
                variables=variables,
                attempt=len(tr.attempts),
                worker_group=task.worker_group.key if task.worker_group else None,
                tenant_id=self.ex.tenant_id,
                sequence=self.ex.sequence,
            )
        )
        self.touched()

    def batch_outputs(self, tr: TaskRun, task: ForEachItemMergeOutputs) -> list[Any]:
        items = next(
            (
                t
                for t in self.ex.task_run_list
                if t.task_id == task.items_id and t.parent_task_run_id == tr.parent_task_run_id
            ),
            None,
        )
        by_batch = self.state.batch_outputs.get(items.id, {}) if items is not None else {}
        return [by_batch[k] for k in sorted(by_batch, key=int)]

    def start_subflow(self, tr: TaskRun, task: ExecutableTask) -> None:
        if isinstance(task, ForEachItemExecutable):
            self.start_batches(tr, task)
            return
        assert isinstance(task, Subflow)
        try:
            render = self.renderer(tr)
            inputs = resolve(task.inputs, render, items=render) or {}
            wait = resolve(task.wait, render)
            inherit_labels = resolve(task.inherit_labels, render)
            labels = self.render_labels(task.labels, tr) if task.labels is not None else []
            namespace = self.render(task.namespace, tr)
            flow_id = self.render(task.flow_id, tr)
        except LannerError as exc:
            self.fail_task_run(tr, f"Subflow '{task.id}': {exc}")
            return
        child_id = self.new_child(
            tr, task, namespace, flow_id, inputs, labels, inherit_labels=inherit_labels, wait=wait
        )
        attempt = Attempt()
        attempt.set_state(State.RUNNING, self.now)
        tr.attempts.append(attempt)
        tr.outputs = {"executionId": child_id}
        self.set_state(tr, State.RUNNING)
        if not wait:
            self.end_task_run(tr, State.SUCCESS)

    def new_child(
        self,
        tr: TaskRun,
        task: Subflow | ForEachItemExecutable,
        namespace: str,
        flow_id: str,
        inputs: dict[str, Any],
        labels: list[Label],
        *,
        inherit_labels: bool,
        wait: bool,
        iteration: int | None = None,
        child_id: str | None = None,
    ) -> str:
        """Emit the creation of a child execution of ``tr``; returns its id."""
        child_id = child_id or self.new_id()
        child_labels: list[Label] = []
        if inherit_labels:
            child_labels.extend(lb for lb in self.ex.labels if lb.key != "system.correlationId")
        child_labels.extend(labels)
        correlation = self.ex.label_map().get("system.correlationId", self.ex.id)
        child_labels = [Label(key="system.correlationId", value=correlation), *child_labels]
        variables: dict[str, Any] = {
            "executionId": self.ex.id,
            "namespace": self.ex.namespace,
            "flowId": self.ex.flow_id,
            "flowRevision": self.ex.flow_revision,
            "taskRunId": tr.id,
            "taskId": tr.task_id,
            "wait": wait,
        }
        if iteration is not None:
            variables["iteration"] = iteration
        child = Execution(
            id=child_id,
            namespace=namespace,
            flow_id=flow_id,
            flow_revision=task.revision or 0,
            tenant_id=self.ex.tenant_id,
            inputs=inputs,
            labels=child_labels,
            trigger=ExecutionTrigger(id=task.id, type=SUBFLOW_TRIGGER_TYPE, variables=variables),
        )
        child.set_state(State.CREATED, self.now)
        self.result.executor_inputs.append(
            NewExecution(
                id=f"new:{child_id}", execution_id=child_id, execution=child, validate_inputs=True
            )
        )
        return child_id

    def start_batches(self, tr: TaskRun, task: ForEachItemExecutable) -> None:
        """ForEachItem's ``<id>_items``: one child execution per batch the split task made."""
        split = next(
            (
                t
                for t in self.ex.task_run_list
                if t.task_id == task.split_id and t.parent_task_run_id == tr.parent_task_run_id
            ),
            None,
        )
        uris = batch_uris(split.outputs or {}) if split is not None else None
        if uris is None:
            self.fail_task_run(tr, f"ForEachItem '{task.id}': the batches of the split are unknown")
            return
        attempt = Attempt()
        attempt.set_state(State.RUNNING, self.now)
        tr.attempts.append(attempt)
        self.set_state(tr, State.RUNNING)
        if not uris:
            self.end_attempt(tr, State.SUCCESS)
            self.end_task_run(tr, State.SUCCESS)  # no batch: Kestra's outputs stay null
            return
        try:
            render = self.renderer(tr)
            wait = resolve(task.wait, render)
            inherit_labels = resolve(task.inherit_labels, render)
            labels = self.render_labels(task.labels, tr) if task.labels is not None else []
            namespace = self.render(task.namespace, tr)
            flow_id = self.render(task.flow_id, tr)
            variables = self.variables(tr)
            functions = self.functions(tr, task.inputs)
            batches = []
            for iteration, uri in enumerate(uris, start=1):
                taskrun = {**variables["taskrun"], "items": uri, "iteration": iteration}
                inputs = render_object(
                    task.inputs, {**variables, "taskrun": taskrun}, functions=functions
                )
                batches.append((iteration, inputs))
        except (LannerError, ValueError) as exc:
            self.end_attempt(tr, State.FAILED)
            self.fail_task_run(tr, f"ForEachItem '{task.id}': {exc}")
            return
        children = [
            self.new_child(
                tr,
                task,
                namespace,
                flow_id,
                inputs,
                labels,
                inherit_labels=inherit_labels,
                wait=wait,
                iteration=iteration,
                child_id=batch_execution_id(tr, iteration),
            )
            for iteration, inputs in batches
        ]
        count = len(children)
        if not wait:
            tr.outputs = {"numberOfBatches": count, "iterations": {"RUNNING": 0, "SUCCESS": count}}
            self.end_attempt(tr, State.SUCCESS)
            self.end_task_run(tr, State.SUCCESS)
            return
        tr.outputs = {
            "numberOfBatches": count,
            "iterations": {"CREATED": 0, "RUNNING": count},
        }
        self.touched()

    def batch_children(self, tr: TaskRun, task: Task | None) -> list[str]:
        """The ids of the batch executions a ForEachItem's items task run made: derived from
        the task run, its attempt and the batch number (nothing per batch in the state, so it
        stays small however many batches), or as listed by an older state."""
        older = self.state.batch_executions.get(tr.id)
        if older is not None:
            return older
        if not isinstance(task, ForEachItemExecutable) or not tr.attempts:
            return []
        count = int((tr.outputs or {}).get("numberOfBatches") or 0)
        return [batch_execution_id(tr, n) for n in range(1, count + 1)]

    def on_batch_ended(self, tr: TaskRun, task: ForEachItemExecutable, event: SubflowEnded) -> None:
        outputs = dict(tr.outputs or {})
        iterations = dict(outputs.get("iterations") or {})
        count = int(outputs.get("numberOfBatches") or 0)
        iterations["RUNNING"] = max(int(iterations.get("RUNNING", 0)) - 1, 0)
        ended = event.state.value
        iterations[ended] = int(iterations.get(ended, 0)) + 1
        outputs["iterations"] = iterations
        tr.outputs = outputs
        if event.outputs and event.iteration is not None:
            self.state.batch_outputs.setdefault(tr.id, {})[str(event.iteration)] = event.outputs
        self.touched()
        done = sum(v for k, v in iterations.items() if State(k).terminal)
        if done < count:
            return
        try:
            transmit = resolve(task.transmit_failed, self.renderer(tr))
        except LannerError as exc:
            self.end_attempt(tr, State.FAILED)
            self.fail_task_run(tr, str(exc))
            return
        state = State(terminal_state(iterations)) if transmit else State.SUCCESS
        self.end_attempt(tr, state)
        self.end_task_run(tr, state)

    def render_labels(self, raw: Any, tr: TaskRun | None) -> list[Label]:
        import json

        value = self.render_typed(raw, tr)
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, dict):
            items = [(self.render(str(k), tr), v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(item["key"], item["value"]) for item in value]
        else:
            raise ValueError(f"labels must be a map or a list, got {type(value).__name__}")
        return [Label(key=str(k), value=_label_text(v)) for k, v in items]

    def apply_executor_task(self, tr: TaskRun, task: ExecutorTask) -> None:
        attempt = Attempt()
        attempt.set_state(State.RUNNING, self.now)
        tr.attempts.append(attempt)
        try:
            if isinstance(task, Exit):
                self.exit(tr, attempt, str(self.render(task.state, tr)).strip())
                return
            if isinstance(task, Labels):
                new = self.render_labels(task.labels, tr)
                for label in new:
                    if label.key.startswith("system."):
                        raise ValueError(f"label '{label.key}' is reserved for the system")
                by_key = {lb.key: lb for lb in self.ex.labels}
                for label in new:
                    by_key[label.key] = label
                self.ex.labels = list(by_key.values())
            elif isinstance(task, ResumeTask):
                target = self.render(task.execution_id, tr) if task.execution_id else None
                if not target:
                    raise ValueError("Resume needs an executionId")
                inputs = self.render_typed(task.inputs, tr) if task.inputs else None
                self.result.executor_inputs.append(
                    Resume(id=f"resume:{self.new_id()}", execution_id=target, inputs=inputs)
                )
        except (LannerError, ValueError, KeyError, TypeError) as exc:
            attempt.set_state(State.FAILED, self.now)
            self.fail_task_run(tr, str(exc))
            return
        attempt.set_state(State.SUCCESS, self.now)
        self.end_task_run(tr, State.SUCCESS)

    def exit(self, tr: TaskRun, attempt: Attempt, name: str) -> None:
        """Kestra's Exit: KILLED kills the execution; any other state ends the Exit task run,
        its parents and the execution in it, and nothing else starts."""
        if name not in EXIT_STATES:
            raise ValueError(f"Exit: unknown state '{name}' (one of {', '.join(EXIT_STATES)})")
        state = State.CANCELLED if name == "CANCELED" else State(name)
        attempt.set_state(state, self.now)
        self.set_state(tr, State.RUNNING)
        if state == State.KILLED:
            self.set_state(tr, State.KILLED)
            self.kill(State.KILLED)
            return
        self.set_state(tr, state)
        for parent in fu.parents(self.ex, tr):
            if not parent.state.current.terminal:
                self.set_state(parent, state)
        self.set_state(self.ex, state)
        self.state.wakeups.clear()

    def resolve_flowable(self, tr: TaskRun, task: FlowableTask) -> bool:
        killing = self.ex.state.current == State.KILLING
        before = len(self.ex.task_run_list)
        try:
            if not killing:
                for resolved in task.resolve_nexts(self, tr):  # type: ignore[arg-type]
                    self.create_task_run(resolved)
            state = task.resolve_state(self, tr)  # type: ignore[arg-type]
            if state is None and killing:
                children = self.children(tr)
                if all(c.state.current.terminal for c in children):
                    state = State.KILLED
            if state is not None:
                outputs = task.outputs(self, tr)  # type: ignore[arg-type]
                if outputs is not None:
                    tr.outputs = {**(tr.outputs or {}), **outputs}
                self.end_task_run(tr, state)
                return True
        except (LannerError, ValueError, KeyError, TypeError) as exc:
            self.fail_task_run(tr, str(exc))
            return True
        return len(self.ex.task_run_list) != before

    def create_task_run(self, resolved: ResolvedTask) -> TaskRun:
        tr = TaskRun(
            id=self.new_id(),
            execution_id=self.ex.id,
            namespace=self.ex.namespace,
            flow_id=self.ex.flow_id,
            task_id=resolved.task.id,
            parent_task_run_id=resolved.parent_id,
            value=resolved.value,
            iteration=resolved.iteration,
        )
        tr.set_state(State.CREATED, self.now)
        self.ex.task_run_list.append(tr)
        self.touched()
        return tr

    def process_root(self) -> bool:
        assert self.flow is not None
        if self._root is None:  # built once per step, not once per pass
            self._root = (
                [ResolvedTask(task=t) for t in self.flow.tasks],
                [ResolvedTask(task=t) for t in self.flow.errors],
                [ResolvedTask(task=t) for t in self.flow.finally_],
            )
        tasks, errors, finally_ = self._root
        changed = False
        if self.ex.state.current.terminal:
            return False  # ended by an Exit task
        if self.ex.state.current != State.KILLING:
            for resolved in fu.resolve_sequential_nexts(self.ex, tasks, errors, finally_, None):
                self.create_task_run(resolved)
                changed = True
        if changed:
            return True
        state = fu.resolve_state(self.ex, tasks, errors, finally_, None)
        if self.ex.state.current == State.KILLING:
            if all(tr.state.current.terminal for tr in self.ex.task_run_list):
                state = self.state.kill_state or State.KILLED
            else:
                state = None
        if state is None or not state.terminal:
            return False
        self.end_execution(state)
        return True

    # ------------------------------------------------------------------ endings
    def fail_task_run(self, tr: TaskRun, message: str) -> None:
        tr.error = message
        self.log("ERROR", message, tr)
        self.end_task_run(tr, State.FAILED, retry=False)

    def end_task_run(self, tr: TaskRun, state: State, *, retry: bool = True) -> None:
        task = self.tasks.get(tr.task_id)
        if state == State.FAILED and retry and isinstance(task, RunnableTask | Subflow):
            due = self.retry_at(tr, task)
            if due is not None and self.ex.state.current != State.KILLING:
                tr.next_date = due
                self.set_state(tr, State.FAILED)
                self.set_state(tr, State.RETRYING)
                self.state.wakeups[f"retry:{tr.id}"] = tr.next_date
                return
        if task is not None:
            if state == State.SUCCESS and len(tr.attempts) > 1:
                policy = self.retry_policy(tr, task)
                if policy is not None and self.resolved(policy.warning_on_retry, tr, False):
                    state = State.WARNING
            if state == State.FAILED and self.resolved(task.allow_failure, tr, False):
                self.set_state(tr, State.FAILED)
                state = State.WARNING
            if state == State.WARNING and self.resolved(task.allow_warning, tr, False):
                state = State.SUCCESS
        self.state.wakeups.pop(f"retry:{tr.id}", None)
        self.state.wakeups.pop(f"wake:{tr.id}", None)
        self.set_state(tr, state)

    def retry_policy(self, tr: TaskRun, task: Task) -> Retry | None:
        ancestors: list[Task] = []
        if task.retry is None and tr.parent_task_run_id is not None:
            ancestors = [
                self.tasks[p.task_id] for p in fu.parents(self.ex, tr) if p.task_id in self.tasks
            ]
        return retries.policy_for(task, ancestors, self.flow.retry if self.flow else None)

    def retry_at(self, tr: TaskRun, task: Task) -> datetime | None:
        """When the failed ``tr`` runs again as a new attempt, or None if it does not."""
        policy = self.retry_policy(tr, task)
        if policy is None or policy.behavior != "RETRY_FAILED_TASK":
            return None
        policy = self.resolved_retry(policy, tr)
        if policy is None:
            return None
        attempts = len(tr.attempts)
        first = tr.state.start_date or self.now
        return retries.next_attempt_at(policy, attempts, self.now, first, f"{tr.id}:{attempts}")

    def breach(self, sla: Sla, reason: str) -> State | None:
        """Logs the breach and adds the SLA's labels; the state its behaviour ends the
        execution in (None: NONE, the execution goes on)."""
        self.log("ERROR", f"SLA '{sla.id}' violated: {reason}")
        if sla.labels:
            try:
                added = {lb.key: lb for lb in self.render_labels(sla.labels, None)}
            except (LannerError, ValueError) as exc:
                self.log("ERROR", f"SLA '{sla.id}': labels not added: {exc}")
                added = {}
            kept = [lb for lb in self.ex.labels if lb.key not in added]
            self.ex.labels = [*kept, *added.values()]
        return {"FAIL": State.FAILED, "CANCEL": State.CANCELLED}.get(sla.behavior)

    def asserted(self, state: State) -> State:
        """The end state once the EXECUTION_ASSERTION SLAs have been checked."""
        assert self.flow is not None
        for sla in self.flow.sla:
            if sla.type != "EXECUTION_ASSERTION" or not sla.assert_:
                continue
            try:
                held = is_true(str(self.render(sla.assert_, None)))
                reason = f"the assertion {sla.assert_} is false"
            except (LannerError, ValueError) as exc:
                held, reason = False, f"the assertion {sla.assert_} failed: {exc}"
            if not held:
                state = self.breach(sla, reason) or state
        return state

    def end_execution(self, state: State) -> None:
        assert self.flow is not None
        state = self.asserted(state)
        if state in (State.SUCCESS, State.WARNING) and self.flow.outputs:
            try:
                outputs: dict[str, Any] = {}
                for output in self.flow.outputs:
                    if output.type == "STRING" and isinstance(output.value, str):
                        outputs[output.id] = self.render(output.value, None)
                    else:
                        outputs[output.id] = self.render_typed(output.value, None)
                self.ex.outputs = {**outputs, **_typed_outputs(self.flow, outputs)}
            except (LannerError, ValueError) as exc:
                self.log("ERROR", f"Failed to render the flow outputs: {exc}")
                self.ex.outputs = None
                state = State.FAILED
        retry = self.flow.retry
        if retry is None or retry.behavior != "CREATE_NEW_EXECUTION":
            # a task's own `retry` with CREATE_NEW_EXECUTION retries the whole execution too
            failed = (
                self.tasks.get(tr.task_id)
                for tr in self.ex.task_run_list
                if tr.current == State.FAILED
            )
            retry = next(
                (
                    t.retry
                    for t in failed
                    if t and t.retry and t.retry.behavior == "CREATE_NEW_EXECUTION"
                ),
                retry,
            )
        if retry is not None:
            retry = self.resolved_retry(retry, None)
        due = None
        if state == State.FAILED and retry is not None and retry.behavior == "CREATE_NEW_EXECUTION":
            # the limits count executions of the chain, from the first one's creation
            attempts = self.ex.metadata.attempt_number
            first = self.first_created()
            seed = f"{self.ex.id}:{attempts}"
            due = retries.next_attempt_at(retry, attempts, self.now, first, seed)
        if due is not None:
            self.set_state(self.ex, State.FAILED)
            self.set_state(self.ex, State.RETRIED)
            self.create_retry_execution(due)
        else:
            self.set_state(self.ex, state)
        self.state.wakeups.clear()

    def first_created(self) -> datetime:
        """When the first execution of a retry chain was created."""
        return self.ex.metadata.original_created_date or self.ex.state.start_date or self.now

    def create_retry_execution(self, due: datetime) -> None:
        new_id = self.new_id()
        retry = Execution(
            id=new_id,
            namespace=self.ex.namespace,
            flow_id=self.ex.flow_id,
            flow_revision=self.ex.flow_revision,
            tenant_id=self.ex.tenant_id,
            inputs=self.ex.inputs,
            labels=self.ex.labels,
            trigger=self.ex.trigger,
            original_id=self.ex.original_id or self.ex.id,
            metadata=self.ex.metadata.model_copy(
                update={
                    "attempt_number": self.ex.metadata.attempt_number + 1,
                    "original_created_date": self.first_created(),
                }
            ),
            # it waits for the retry interval, as an execution scheduled for later does
            schedule_date=due,
        )
        retry.set_state(State.CREATED, self.now)
        self.result.executor_inputs.append(
            NewExecution(id=f"new:{new_id}", execution_id=new_id, execution=retry)
        )

    def on_end(self) -> None:
        """Tell the parent execution (for a Subflow child) that this one ended."""
        trigger = self.ex.trigger
        if trigger is None or trigger.type != SUBFLOW_TRIGGER_TYPE:
            return
        parent_id = trigger.variables.get("executionId")
        task_run_id = trigger.variables.get("taskRunId")
        if not parent_id or not task_run_id or trigger.variables.get("wait") is False:
            return
        variables = self.variables(None) if self.vars is not None else None
        self.result.executor_inputs.append(
            SubflowEnded(
                id=f"subflow-ended:{self.ex.id}",
                execution_id=parent_id,
                task_run_id=task_run_id,
                child_execution_id=self.ex.id,
                state=self.ex.state.current,
                outputs=self.ex.outputs,
                variables=variables,
                iteration=trigger.variables.get("iteration"),
            )
        )


def batch_execution_id(tr: TaskRun, iteration: int) -> str:
    """The id of batch ``iteration`` of the current attempt of a ForEachItem items task run."""
    return derived_id(tr.id, "batch", str(len(tr.attempts)), str(iteration))


def _copy(model: _M) -> _M:
    """A deep copy: a dump and validation in pydantic-core cost a quarter of ``deepcopy``."""
    return type(model).model_validate(model.model_dump(by_alias=True))


def _label_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _typed_outputs(flow: Flow, rendered: dict[str, Any]) -> dict[str, Any]:
    """Flow outputs coerced to their declared type, as Kestra's ``typedOutputs`` does."""
    from common.flow.inputs import validate_inputs
    from common.models.flow import Input

    specs = [
        Input(id=o.id, type=o.type, required=False)  # type: ignore[arg-type]
        for o in flow.outputs
        if o.type not in ("STRING", "FILE")
    ]
    if not specs:
        return {}
    return validate_inputs(flow.model_copy(update={"inputs": specs}), rendered)


def _input_defaults(flow: Flow | None) -> dict[str, Any]:
    if flow is None:
        return {}
    return {i.id: i.defaults for i in flow.inputs if i.defaults is not None}


def nested_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return nest_dotted(inputs)
