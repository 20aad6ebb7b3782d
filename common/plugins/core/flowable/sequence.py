"""Sequential, Parallel and AllowFailure."""

from __future__ import annotations

from typing import ClassVar

from common.models.execution import TaskRun
from common.models.state import State
from common.plugins.base import ResolveContext, ResolvedTask
from common.plugins.dynamic import DynamicCount, resolve

from ._common import WithChildren


class Sequential(WithChildren):
    TYPE: ClassVar[str] = "lanner.core.flow.Sequential"

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._sequential(ctx, parent)


class Parallel(WithChildren):
    TYPE: ClassVar[str] = "lanner.core.flow.Parallel"
    concurrent: DynamicCount = 0

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        concurrent = resolve(self.concurrent, lambda v: ctx.render_typed(v, parent))
        return self._parallel(ctx, parent, concurrent)


class AllowFailure(WithChildren):
    """Runs its tasks sequentially; a failure among them ends it in WARNING."""

    TYPE: ClassVar[str] = "lanner.core.flow.AllowFailure"

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._sequential(ctx, parent)

    def resolve_state(self, ctx: ResolveContext, parent: TaskRun) -> State | None:
        state = super().resolve_state(ctx, parent)
        if state in (State.FAILED,):
            return State.WARNING
        return state
