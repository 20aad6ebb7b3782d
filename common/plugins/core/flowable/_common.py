"""What the flowable tasks share: child lists with errors/finally, resolution helpers."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from common.flow import flowable_utils as fu
from common.models.execution import TaskRun
from common.models.state import State
from common.plugins.base import FlowableTask, ResolveContext, ResolvedTask, Task
from common.plugins.registry import AnyTask


def resolve(tasks: list[Task], parent: TaskRun, value: str | None = None) -> list[ResolvedTask]:
    return [ResolvedTask(task=t, parent_id=parent.id, value=value) for t in tasks]


class WithBranches(FlowableTask):
    """A flowable with ``errors`` and ``finally`` branches around its own children."""

    errors: list[AnyTask] = Field(default_factory=list)
    finally_: list[AnyTask] = Field(default_factory=list, alias="finally")

    def error_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return resolve(self.errors, parent)

    def finally_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return resolve(self.finally_, parent)

    def resolve_state(self, ctx: ResolveContext, parent: TaskRun) -> State | None:
        return fu.resolve_state(
            ctx.execution,
            self.child_tasks(ctx, parent),
            self.error_tasks(ctx, parent),
            self.finally_tasks(ctx, parent),
            parent,
        )


class WithChildren(WithBranches):
    """A flowable with ``tasks``, ``errors`` and ``finally``."""

    tasks: list[AnyTask] = Field(default_factory=list)

    def all_child_tasks(self) -> list[Task]:
        return [*self.tasks, *self.errors, *self.finally_]

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return resolve(self.tasks, parent)

    def _sequential(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return fu.resolve_sequential_nexts(
            ctx.execution,
            self.child_tasks(ctx, parent),
            self.error_tasks(ctx, parent),
            self.finally_tasks(ctx, parent),
            parent,
        )

    def _parallel(self, ctx: ResolveContext, parent: TaskRun, limit: int) -> list[ResolvedTask]:
        return fu.resolve_parallel_nexts(
            ctx.execution,
            self.child_tasks(ctx, parent),
            self.error_tasks(ctx, parent),
            self.finally_tasks(ctx, parent),
            parent,
            limit,
        )


def as_int(value: Any, default: int) -> int:
    if value is None:
        return default
    return int(value)
