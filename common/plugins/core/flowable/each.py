"""ForEach and the older EachSequential / EachParallel: children once per value."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field

from common.flow import flowable_utils as fu
from common.models.execution import TaskRun
from common.plugins.base import ResolveContext, ResolvedTask
from common.plugins.dynamic import DynamicCount, resolve

from ._common import WithChildren


def _values(ctx: ResolveContext, raw: Any, parent: TaskRun, task_id: str) -> list[str]:
    """Render ``values``/``value`` into distinct string values (objects as compact JSON)."""
    value = ctx.render_typed(raw, parent) if isinstance(raw, str) else raw
    if isinstance(value, list):
        # a list may itself hold templates
        value = [ctx.render(v, parent) if isinstance(v, str) else v for v in value]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"'{task_id}': values must be a JSON list, got '{value}'") from exc
    if value is None:
        raise ValueError(f"'{task_id}': values is null")
    if not isinstance(value, list):
        raise ValueError(f"'{task_id}': values must be a list, got {type(value).__name__}")
    nulls = sum(1 for v in value if v is None)
    if nulls:
        raise ValueError(f"Found '{nulls}' null values on Each, with values={_java(value)}")
    out: list[str] = []
    for item in value:
        text = (
            item
            if isinstance(item, str)
            else json.dumps(item, separators=(",", ":"))
            if isinstance(item, dict | list)
            else json.dumps(item)
        )
        if text not in out:
            out.append(text)
    return out


def _java(value: Any) -> str:
    """Java's ``toString`` of a JSON value, as Kestra's error messages show it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_java(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java(v)}" for k, v in value.items()) + "}"
    return str(value)


class _Each(WithChildren):
    def _each(self, ctx: ResolveContext, parent: TaskRun, raw: Any) -> list[ResolvedTask]:
        return [
            ResolvedTask(task=t, value=v, parent_id=parent.id)
            for v in _values(ctx, raw, parent, self.id)
            for t in self.tasks
        ]

    def error_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return [ResolvedTask(task=t, parent_id=parent.id) for t in self.errors]


class ForEach(_Each):
    TYPE: ClassVar[str] = "lanner.core.flow.ForEach"
    values: Any
    concurrency_limit: DynamicCount = Field(default=1, alias="concurrencyLimit")

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._each(ctx, parent, self.values)

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return fu.resolve_grouped_nexts(
            ctx.execution,
            self.child_tasks(ctx, parent),
            self.error_tasks(ctx, parent),
            self.finally_tasks(ctx, parent),
            parent,
            resolve(self.concurrency_limit, lambda v: ctx.render_typed(v, parent)),
        )


class EachSequential(_Each):
    TYPE: ClassVar[str] = "lanner.core.flow.EachSequential"
    value: Any

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._each(ctx, parent, self.value)

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._sequential(ctx, parent)


class EachParallel(_Each):
    TYPE: ClassVar[str] = "lanner.core.flow.EachParallel"
    value: Any
    concurrent: DynamicCount = 0

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._each(ctx, parent, self.value)

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        concurrent = resolve(self.concurrent, lambda v: ctx.render_typed(v, parent))
        return self._parallel(ctx, parent, concurrent)
