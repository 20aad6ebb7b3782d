"""Execution, task run and attempt: the state the executor evolves and the API shows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, computed_field

from .base import WireModel
from .state import State


class StateEntry(WireModel):
    state: State
    date: datetime


class StateInfo(WireModel):
    """Kestra's ``State``: the current state and every state gone through, with dates."""

    current: State = State.CREATED
    histories: list[StateEntry] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def start_date(self) -> datetime | None:
        return self.histories[0].date if self.histories else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def end_date(self) -> datetime | None:
        if self.current.terminal and self.histories:
            return self.histories[-1].date
        return None

    def duration(self, now: datetime) -> timedelta:
        start = self.start_date or now
        return (self.end_date or now) - start

    def count(self, state: State) -> int:
        return sum(1 for h in self.histories if h.state == state)


class Stateful(WireModel):
    state: StateInfo = Field(default_factory=StateInfo)

    @property
    def current(self) -> State:
        return self.state.current

    def set_state(self, state: State, now: datetime) -> None:
        self.state.current = state
        self.state.histories.append(StateEntry(state=state, date=now))


class Label(WireModel):
    key: str
    value: str


class Attempt(Stateful):
    worker_id: str | None = None


class TaskRun(Stateful):
    id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str
    parent_task_run_id: str | None = None
    value: str | None = None
    iteration: int | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    outputs: dict[str, Any] | None = None
    # when a retry or a pause delay is due; the executor's timers use it
    next_date: datetime | None = None
    # number of times the worker task was (re)submitted for the current attempt
    dynamic: bool = False
    # reason shown to the user when the task failed before reaching a worker
    error: str | None = None

    @property
    def attempts_count(self) -> int:
        return len(self.attempts)


class ExecutionTrigger(WireModel):
    id: str
    type: str
    variables: dict[str, Any] = Field(default_factory=dict)


class ExecutionMetadata(WireModel):
    attempt_number: int = 1
    original_created_date: datetime | None = None


class Execution(Stateful):
    id: str
    namespace: str
    flow_id: str
    flow_revision: int = 1
    tenant_id: str | None = None
    task_run_list: list[TaskRun] = Field(default_factory=list)
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    labels: list[Label] = Field(default_factory=list)
    variables: dict[str, Any] | None = None
    parent_id: str | None = None
    original_id: str | None = None
    trigger: ExecutionTrigger | None = None
    schedule_date: datetime | None = None
    metadata: ExecutionMetadata = Field(default_factory=ExecutionMetadata)
    deleted: bool = False
    # monotonic version: the indexer writes with external versioning on it
    sequence: int = 0

    def task_run(self, task_run_id: str) -> TaskRun:
        for tr in self.task_run_list:
            if tr.id == task_run_id:
                return tr
        raise KeyError(task_run_id)

    def find_task_run(self, task_run_id: str) -> TaskRun | None:
        for tr in self.task_run_list:
            if tr.id == task_run_id:
                return tr
        return None

    def label_map(self) -> dict[str, str]:
        return {label.key: label.value for label in self.labels}


class ExecutionHead(Stateful):
    """The fields of an execution JSON that a repository indexes; decoding only them skips the
    task runs and outputs (the indexer stores the JSON as it came). Inputs are searched."""

    id: str
    namespace: str
    flow_id: str
    tenant_id: str | None = None
    inputs: dict[str, Any] | None = None
    labels: list[Label] = Field(default_factory=list)
    parent_id: str | None = None
    deleted: bool = False
    sequence: int = 0


class ExecutionSummary(WireModel):
    """What search results show of an execution."""

    id: str
    namespace: str
    flow_id: str
    state: State
    labels: list[Label] = Field(default_factory=list)
    start_date: datetime | None = None
    end_date: datetime | None = None
