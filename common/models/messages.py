"""Messages exchanged through the queue (see the topic table in DESIGN.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from .base import Message
from .execution import Execution, Label, TaskRun
from .state import State

# ---------------------------------------------------------------- worker side


class WorkerTask(Message):
    """A runnable task to run: the task definition, its task run and the variables to render."""

    task_run: TaskRun
    task: dict[str, Any]
    variables: dict[str, Any]
    attempt: int
    worker_group: str | None = None
    tenant_id: str | None = None
    # the execution's ``sequence`` when this attempt was submitted (see ``KillOrder``)
    sequence: int = 0

    @property
    def job_id(self) -> str:
        """Deterministic per (task run, attempt): workers deduplicate on it."""
        return f"{self.task_run.id}:{self.attempt}"


class WorkerTaskResult(Message):
    execution_id: str
    task_run_id: str
    attempt: int
    state: State
    outputs: dict[str, Any] | None = None
    error: str | None = None
    worker_id: str | None = None
    # a task run the worker created: a child of a WorkingDirectory it runs (Kestra's dynamic
    # task runs), added to the execution by its first result
    task_run: TaskRun | None = None
    date: datetime

    @property
    def input_id(self) -> str:
        return f"result:{self.task_run_id}:{self.attempt}:{self.state.value}"


class WorkerJob(Message):
    """Which worker runs a task run attempt (tombstoned when it ends)."""

    task_run_id: str
    execution_id: str
    attempt: int
    worker_id: str
    date: datetime


class WorkerHeartbeat(Message):
    worker_id: str
    hostname: str
    group: str | None = None
    threads: int
    running: int
    date: datetime
    status: Literal["UP", "TERMINATING", "DEAD"] = "UP"


class KillOrder(Message):
    """Stop the execution's tasks (or one task run and its children).

    ``sequence`` is the execution's ``sequence`` when the kill was decided: it applies to the
    worker tasks submitted at or before it (``WorkerTask.sequence``), never to the ones of a
    later restart. A worker orders kills and tasks this way, never by comparing its clock with
    the dates the executor wrote.
    """

    execution_id: str
    task_run_id: str | None = None
    sequence: int = 0


class LogEntry(Message):
    tenant_id: str | None = None
    namespace: str
    flow_id: str
    execution_id: str | None = None
    task_id: str | None = None
    task_run_id: str | None = None
    attempt_number: int | None = None
    trigger_id: str | None = None
    timestamp: datetime
    level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    thread: str | None = None
    message: str


class MetricEntry(Message):
    tenant_id: str | None = None
    namespace: str
    flow_id: str
    execution_id: str | None = None
    task_id: str | None = None
    task_run_id: str | None = None
    name: str
    type: Literal["counter", "timer"] = "counter"
    value: float
    tags: dict[str, str] = Field(default_factory=dict)
    timestamp: datetime


# ---------------------------------------------------------------- executor inputs
# Every input has a unique ``id``; the executor remembers the ids it applied so that a
# redelivered input changes nothing (at-least-once delivery made effectively-once).


class _ExecutorInput(Message):
    id: str
    execution_id: str


class NewExecution(_ExecutorInput):
    kind: Literal["new"] = "new"
    execution: Execution
    # set when the inputs come unchecked (from a Subflow task): the executor validates them
    validate_inputs: bool = False


class TaskResult(_ExecutorInput):
    kind: Literal["result"] = "result"
    result: WorkerTaskResult


class Kill(_ExecutorInput):
    kind: Literal["kill"] = "kill"
    # set on the orders sent unchecked (the repository down): the executor applies them only to
    # an execution of this tenant (``executor.core._same_tenant``); Kill, Resume, Restart
    tenant_id: str | None = None


class Resume(_ExecutorInput):
    kind: Literal["resume"] = "resume"
    tenant_id: str | None = None
    task_run_id: str | None = None
    inputs: dict[str, Any] | None = None


class SubflowEnded(_ExecutorInput):
    """A child execution (created by a Subflow task) reached a terminal state."""

    kind: Literal["subflow-ended"] = "subflow-ended"
    task_run_id: str
    child_execution_id: str
    state: State
    outputs: dict[str, Any] | None = None
    # the child's render variables, for the Subflow task's `outputs` templates
    variables: dict[str, Any] | None = None
    # the batch number of a ForEachItem batch execution (1, 2, ...)
    iteration: int | None = None


class Timer(_ExecutorInput):
    """A delay the core asked for is due (retry, pause, WaitFor, timeouts)."""

    kind: Literal["timer"] = "timer"
    key: str


class Restart(_ExecutorInput):
    kind: Literal["restart"] = "restart"
    tenant_id: str | None = None


class ManualPause(_ExecutorInput):
    """Pause a RUNNING execution from the API: what runs finishes, nothing new starts until a
    ``Resume`` (Kestra's ``ExecutionService.pause``)."""

    kind: Literal["pause"] = "pause"


class SetLabels(_ExecutorInput):
    """Add or update labels of an execution from the API (Kestra's ``setLabels``): given labels
    win over existing ones, system labels keep their value (``common.executions.set_labels``).

    ``execution`` is the caller's stored copy of an ended execution: the executor uses it only
    when it no longer holds the execution (purged after its retention), so the labels still
    reach the ``executions`` snapshot."""

    kind: Literal["labels"] = "labels"
    labels: list[Label]
    execution: Execution | None = None


class WorkerDied(_ExecutorInput):
    """A worker missed its heartbeats: its running attempt of this task run is lost."""

    kind: Literal["worker-died"] = "worker-died"
    task_run_id: str
    attempt: int
    worker_id: str


class Dequeue(_ExecutorInput):
    """A concurrency slot of the flow is free: a QUEUED execution may start."""

    kind: Literal["dequeue"] = "dequeue"
    # executions of the flow holding a slot besides this one, when the sender keeps the slots
    running_count: int | None = None


class FlowNotice(Message):
    """To the flow agent (``executor-flows``, keyed by ``flow_key``): an execution asks for a
    concurrency slot (``admit``), changed state (``state``: slots follow it), or changed state
    in a way a Flow trigger of the keyed flow watches (``trigger``)."""

    kind: Literal["admit", "state", "trigger"]
    flow_key: str
    execution: Execution
    previous: State | None = None


ExecutorInput = Annotated[
    NewExecution
    | TaskResult
    | Kill
    | Resume
    | SubflowEnded
    | Timer
    | Restart
    | ManualPause
    | SetLabels
    | WorkerDied
    | Dequeue,
    Field(discriminator="kind"),
]
EXECUTOR_INPUT: TypeAdapter[ExecutorInput] = TypeAdapter(ExecutorInput)
