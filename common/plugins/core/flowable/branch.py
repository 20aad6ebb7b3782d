"""Switch and If: choose the children from a rendered value or condition."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from common.models.execution import TaskRun
from common.plugins.base import ResolveContext, ResolvedTask, Task
from common.plugins.registry import AnyTask
from common.templating import is_true

from ._common import WithChildren, resolve


class Switch(WithChildren):
    TYPE: ClassVar[str] = "lanner.core.flow.Switch"
    value: Any
    cases: dict[str, list[AnyTask]] = Field(default_factory=dict)
    defaults: list[AnyTask] = Field(default_factory=list)

    @field_validator("cases", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        # YAML reads `1:` as an int key; Kestra compares the rendered value as a string
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value

    @field_validator("defaults", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    def all_child_tasks(self) -> list[Task]:
        out: list[Task] = []
        for tasks in self.cases.values():
            out.extend(tasks)
        return [*out, *self.defaults, *self.errors, *self.finally_]

    def _selected(self, ctx: ResolveContext, parent: TaskRun) -> tuple[str, list[Task] | None]:
        rendered = ctx.render(
            self.value if isinstance(self.value, str) else str(self.value), parent
        )
        if rendered in self.cases:
            return rendered, self.cases[rendered]
        return rendered, self.defaults or None

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        _, tasks = self._selected(ctx, parent)
        if tasks is None:
            raise ValueError(
                f"Switch '{self.id}': no case matches '{self._selected(ctx, parent)[0]}' "
                "and there are no defaults"
            )
        return resolve(tasks, parent)

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._sequential(ctx, parent)

    def outputs(self, ctx: ResolveContext, parent: TaskRun) -> dict[str, Any] | None:
        value, _ = self._selected(ctx, parent)
        return {"value": value, "defaults": value not in self.cases}


class If(WithChildren):
    TYPE: ClassVar[str] = "lanner.core.flow.If"
    condition: Any
    then: list[AnyTask] = Field(min_length=1)
    else_: list[AnyTask] = Field(default_factory=list, alias="else")

    def all_child_tasks(self) -> list[Task]:
        return [*self.then, *self.else_, *self.errors, *self.finally_]

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        raw = self.condition
        rendered = ctx.render(raw if isinstance(raw, str) else str(raw).lower(), parent)
        return resolve(self.then if is_true(rendered) else self.else_, parent)

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._sequential(ctx, parent)
