"""The flow definition: Kestra's flow language as pydantic models."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from common import bounded
from common.plugins.base import ID_PATTERN, FlowModel, Retry, Task, parse_duration
from common.plugins.registry import AnyTask, AnyTrigger

NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"

InputType = Literal[
    "STRING",
    "ENUM",
    "SELECT",
    "MULTISELECT",
    "INT",
    "FLOAT",
    "BOOLEAN",
    "BOOL",
    "DATETIME",
    "DATE",
    "TIME",
    "DURATION",
    "FILE",
    "JSON",
    "YAML",
    "URI",
    "SECRET",
    "ARRAY",
    "EMAIL",
]


class Input(FlowModel):
    id: str = Field(validation_alias=AliasChoices("id", "name"), pattern=ID_PATTERN)
    type: InputType
    description: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    required: bool = True
    defaults: Any = None
    # ENUM / SELECT / MULTISELECT
    values: list[str] | str | None = None
    options: list[str] | None = None
    allow_custom_value: bool = Field(default=False, alias="allowCustomValue")
    is_radio: bool = Field(default=False, alias="isRadio")
    expression: str | None = None
    # ARRAY
    item_type: str | None = Field(default=None, alias="itemType")
    # STRING
    validator: str | None = None
    # INT / FLOAT / DURATION
    min: Any = None
    max: Any = None
    # DATE / DATETIME / TIME
    after: Any = None
    before: Any = None
    # FILE
    extension: str | None = None
    depends_on: dict[str, Any] | None = Field(default=None, alias="dependsOn")
    prefill: Any = None

    @field_validator("validator")
    @classmethod
    def _validator_is_a_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                bounded.check(value)
            except re.error as exc:
                raise ValueError(f"'{value}' is not a valid regular expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _bounds_have_the_input_type(self) -> Input:
        from common.flow.inputs import bound_problem  # the coercers live there, and import this

        problem = bound_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


class Output(FlowModel):
    id: str = Field(pattern=ID_PATTERN)
    type: str = "STRING"
    value: Any
    description: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    required: bool = True


class Concurrency(FlowModel):
    limit: int = Field(ge=1)
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"


class PluginDefault(FlowModel):
    type: str
    values: dict[str, Any] = Field(default_factory=dict)
    forced: bool = False


class Sla(FlowModel):
    """A flow SLA (Kestra's ``sla``): MAX_DURATION is checked by a timer from the execution's
    start, EXECUTION_ASSERTION when the execution ends. A breach logs an ERROR, adds ``labels``
    and, by ``behavior``, fails or cancels the execution (NONE: only the log and the labels)."""

    id: str = Field(pattern=ID_PATTERN)
    type: Literal["MAX_DURATION", "EXECUTION_ASSERTION"]
    behavior: Literal["FAIL", "CANCEL", "NONE"] = "FAIL"
    duration: str | None = None
    assert_: str | None = Field(default=None, alias="assert")
    labels: Any = None

    @model_validator(mode="after")
    def _what_its_type_needs(self) -> Sla:
        if self.type == "MAX_DURATION":
            if not self.duration:
                raise ValueError("a MAX_DURATION SLA needs a duration (e.g. PT1H)")
            if parse_duration(self.duration) is None:
                raise ValueError(f"duration {self.duration!r} is not an ISO-8601 duration")
        elif not self.assert_:
            raise ValueError("an EXECUTION_ASSERTION SLA needs an assert expression")
        return self


class Flow(FlowModel):
    id: str = Field(pattern=ID_PATTERN, max_length=100)
    namespace: str = Field(pattern=NAMESPACE_PATTERN, max_length=150)
    revision: int | None = None
    tenant_id: str | None = Field(default=None, alias="tenantId")
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    inputs: list[Input] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: list[AnyTask] = Field(min_length=1)
    errors: list[AnyTask] = Field(default_factory=list)
    finally_: list[AnyTask] = Field(default_factory=list, alias="finally")
    after_execution: list[AnyTask] = Field(default_factory=list, alias="afterExecution")
    outputs: list[Output] = Field(default_factory=list)
    triggers: list[AnyTrigger] = Field(default_factory=list)
    concurrency: Concurrency | None = None
    retry: Retry | None = None
    disabled: bool = False
    deleted: bool = False
    plugin_defaults: list[PluginDefault] = Field(default_factory=list, alias="pluginDefaults")
    task_defaults: list[PluginDefault] = Field(default_factory=list, alias="taskDefaults")
    sla: list[Sla] = Field(default_factory=list)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_map(cls, value: Any) -> Any:
        # Kestra accepts both `{k: v}` and `[{key: k, value: v}]`.
        if isinstance(value, list):
            if not all(isinstance(item, dict) for item in value):
                raise ValueError("a list of labels holds maps with a key and a value")
            return {str(item.get("key")): str(item.get("value")) for item in value}
        if isinstance(value, dict):
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value

    @field_validator("variables", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _unique_ids(self) -> Flow:
        seen: set[str] = set()
        duplicates: list[str] = []
        for task in self.all_tasks():
            if task.id in seen:
                duplicates.append(task.id)
            seen.add(task.id)
        if duplicates:
            raise ValueError(f"duplicate task id(s): {', '.join(sorted(set(duplicates)))}")
        input_ids = [i.id for i in self.inputs]
        dup_inputs = sorted({i for i in input_ids if input_ids.count(i) > 1})
        if dup_inputs:
            raise ValueError(f"duplicate input id(s): {', '.join(dup_inputs)}")
        return self

    @property
    def uid(self) -> str:
        return f"{self.tenant_id or 'main'}/{self.namespace}/{self.id}"

    def all_tasks(self) -> list[Task]:
        """Every task of the flow, depth first, flowables before their children."""
        out: list[Task] = []

        def walk(tasks: list[Task]) -> None:
            for task in tasks:
                out.append(task)
                children = getattr(task, "all_child_tasks", None)
                if children is not None:
                    walk(children())

        walk([*self.tasks, *self.errors, *self.finally_, *self.after_execution])
        return out

    def find_task(self, task_id: str) -> Task | None:
        for task in self.all_tasks():
            if task.id == task_id:
                return task
        return None
