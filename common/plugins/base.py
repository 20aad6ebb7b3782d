"""Plugin base classes: what a task, a trigger or a condition is.

A plugin is a pydantic model whose capability comes from its base class, as in Kestra:

- ``RunnableTask``: runs on a worker; ``run(ctx)`` returns its outputs.
- ``FlowableTask``: resolved by the executor; it says which child task runs to create next and
  what its own state is once its children ended. Never sent to a worker.
- ``ExecutableTask``: resolved by the executor into another execution (Subflow).
- ``Trigger`` / ``Condition``: start executions / filter them.

Text properties that accept templates are plain ``str``/``Any`` fields rendered at run time
through the context (``ctx.render(self.message)``), because they may refer to outputs produced
after the flow was parsed. Typed properties (durations, numbers, booleans, lists, maps) that
Kestra renders too are declared with ``common.plugins.dynamic``'s types and read through
``dynamic.resolve``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from .dynamic import DynamicBool, DynamicDuration, DynamicFloat, DynamicPositive

if TYPE_CHECKING:
    from common.models.execution import Execution, TaskRun
    from common.models.state import State
    from common.models.trigger import TriggerRequest

ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"


class FlowModel(BaseModel):
    """Part of a flow definition: camelCase like Kestra's YAML, unknown properties refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        arbitrary_types_allowed=True,
    )


class Retry(FlowModel):
    type: Literal["constant", "exponential", "random"]
    max_attempt: DynamicPositive | None = Field(default=None, alias="maxAttempt")
    max_duration: DynamicDuration | None = Field(default=None, alias="maxDuration")
    warning_on_retry: DynamicBool = Field(default=False, alias="warningOnRetry")
    behavior: Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"] = "RETRY_FAILED_TASK"
    # constant
    interval: DynamicDuration | None = None
    # exponential
    max_interval: DynamicDuration | None = Field(default=None, alias="maxInterval")
    delay_factor: DynamicFloat | None = Field(default=None, alias="delayFactor")
    # random
    min_interval: DynamicDuration | None = Field(default=None, alias="minInterval")


class WorkerGroup(FlowModel):
    # the key names Kafka topics (``worker-tasks.<key>``): only the characters they allow
    key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$", max_length=100)
    fallback: str | None = None


class Task(FlowModel):
    """Properties every task has (Kestra's ``Task``)."""

    TYPE: ClassVar[str] = ""
    id: str = Field(pattern=ID_PATTERN)
    type: str
    description: str | None = None
    retry: Retry | None = None
    timeout: DynamicDuration | None = None
    disabled: bool = False
    allow_failure: DynamicBool = Field(default=False, alias="allowFailure")
    allow_warning: DynamicBool = Field(default=False, alias="allowWarning")
    run_if: str | bool | None = Field(default=None, alias="runIf")
    worker_group: WorkerGroup | None = Field(default=None, alias="workerGroup")
    log_level: str | None = Field(default=None, alias="logLevel")
    log_to_file: bool = Field(default=False, alias="logToFile")

    @field_validator("type")
    @classmethod
    def _canonical_type(cls, value: str) -> str:
        return value


class RunContext(Protocol):
    """What a runnable task sees on the worker."""

    @property
    def variables(self) -> Mapping[str, Any]: ...

    def render(self, value: Any) -> Any:
        """Render a template string, or every string inside a dict/list."""
        ...

    def render_typed(self, value: Any) -> Any: ...

    def log(self, level: str, message: str) -> None: ...

    def metric(self, name: str, value: float, kind: str = "counter") -> None: ...

    def is_killed(self) -> bool: ...

    def wait_killed(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True as soon as a kill order arrives."""
        ...

    @property
    def working_dir(self) -> str: ...

    def put_file(self, path: str) -> str:
        """Store a local file in internal storage; return its ``lanner://`` URI."""
        ...

    def get_file(self, uri: str) -> bytes: ...

    def send_trigger_request(self, request: TriggerRequest) -> None:
        """Send a user's change of a trigger to the scheduler (``common.trigger_requests``)."""
        ...


class RunnableTask(Task):
    """A task run by a worker. ``run`` returns outputs (or None); raising fails the attempt."""

    def run(self, ctx: RunContext) -> Mapping[str, Any] | None:
        raise NotImplementedError


class ResolvedTask(BaseModel):
    """A child task to run, with the iteration value and the parent task run it belongs to."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    task: Task
    value: str | None = None
    parent_id: str | None = None
    iteration: int | None = None


class ResolveContext(Protocol):
    """What a flowable task sees inside the executor core (pure: no I/O, no clock)."""

    execution: Execution
    now: datetime

    def render(self, value: Any, task_run: TaskRun | None = None) -> Any: ...

    def render_typed(self, value: Any, task_run: TaskRun | None = None) -> Any: ...

    def children(self, parent: TaskRun) -> list[TaskRun]: ...

    def wake_at(self, task_run: TaskRun, when: datetime) -> None:
        """Ask the executor to process this execution again at ``when``."""
        ...


class FlowableTask(Task):
    """A task whose children the executor creates (Sequential, Parallel, ForEach, ...)."""

    def all_child_tasks(self) -> list[Task]:
        """Every task declared inside, for validation and graphs."""
        return []

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        raise NotImplementedError

    def error_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        errors = getattr(self, "errors", None) or []
        return [ResolvedTask(task=t, value=parent.value, parent_id=parent.id) for t in errors]

    def finally_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        finally_ = getattr(self, "finally_", None) or []
        return [ResolvedTask(task=t, value=parent.value, parent_id=parent.id) for t in finally_]

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        raise NotImplementedError

    def resolve_state(self, ctx: ResolveContext, parent: TaskRun) -> State | None:
        raise NotImplementedError

    def outputs(self, ctx: ResolveContext, parent: TaskRun) -> dict[str, Any] | None:
        return None


class ExecutableTask(Task):
    """A task that runs another execution (Subflow): the executor creates the child execution and
    ends the task run when the child ends."""


class ExecutorTask(Task):
    """A task applied by the executor itself, in place (Labels, Resume): it changes the
    execution or emits executor inputs, so it never travels to a worker."""


class Condition(FlowModel):
    TYPE: ClassVar[str] = ""
    type: str


class Trigger(FlowModel):
    TYPE: ClassVar[str] = ""
    id: str = Field(pattern=ID_PATTERN)
    type: str
    description: str | None = None
    disabled: bool = False
    conditions: list[Any] = Field(default_factory=list)
    stop_after: list[str] | None = Field(default=None, alias="stopAfter")
    worker_group: WorkerGroup | None = Field(default=None, alias="workerGroup")
    log_level: str | None = Field(default=None, alias="logLevel")


class PollingContext(Protocol):
    """What a polling trigger sees on the worker while it is evaluated."""

    @property
    def variables(self) -> Mapping[str, Any]: ...

    @property
    def namespace(self) -> str: ...

    @property
    def tenant(self) -> str:
        """The flow's tenant (its files are under ``lanner:///<tenant>/``)."""
        ...

    def render(self, value: Any) -> Any:
        """Render a template string, or every string inside a dict/list."""
        ...

    def render_typed(self, value: Any) -> Any: ...

    def log(self, level: str, message: str) -> None: ...

    def seconds_left(self) -> float:
        """Seconds until the evaluation lock expires: an evaluation must end before."""
        ...

    @property
    def storage(self) -> Any:
        """The internal storage (``common.storage.base.Storage``)."""
        ...


class PollingTrigger(Trigger):
    """A trigger evaluated on a worker every ``interval`` (Kestra's ``PollingTriggerInterface``):
    ``evaluate`` returns the ``trigger.*`` variables of the execution to start, or None.

    The scheduler never sends a trigger whose previous evaluation has not answered, nor one
    whose execution still runs (``notes/scheduler.md``, polling triggers)."""

    interval: str = "PT60S"

    @field_validator("interval")
    @classmethod
    def _positive_interval(cls, value: str) -> str:
        delta = parse_duration(value)
        if delta is None or delta <= timedelta(0):
            raise ValueError(f"interval '{value}' must be a positive ISO-8601 duration")
        return value

    def evaluate(self, ctx: PollingContext) -> Mapping[str, Any] | None:
        raise NotImplementedError


def parse_duration(value: str | timedelta | None) -> timedelta | None:
    """ISO-8601 duration (``PT1S``, ``P1DT2H``, ``PT0.25S``) to a timedelta."""
    from common.flow.durations import parse_iso_duration

    if value is None or isinstance(value, timedelta):
        return value
    return parse_iso_duration(value)
