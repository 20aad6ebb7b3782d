"""WaitFor: run the tasks again and again until the condition is true."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field

from common.flow import flowable_utils as fu
from common.models.execution import TaskRun
from common.models.state import State
from common.plugins.base import FlowModel, ResolveContext, ResolvedTask
from common.plugins.dynamic import DynamicBool, DynamicDuration, DynamicPositive, resolve
from common.templating import is_true

from ._common import WithChildren


class CheckFrequency(FlowModel):
    interval: DynamicDuration = timedelta(seconds=1)
    max_iterations: DynamicPositive = Field(default=100, alias="maxIterations")
    max_duration: DynamicDuration = Field(default=timedelta(hours=1), alias="maxDuration")


class WaitFor(WithChildren):
    TYPE: ClassVar[str] = "lanner.core.flow.WaitFor"
    condition: str
    check_frequency: CheckFrequency = Field(default_factory=CheckFrequency, alias="checkFrequency")
    fail_on_max_reached: DynamicBool = Field(default=False, alias="failOnMaxReached")

    @staticmethod
    def _iteration(parent: TaskRun) -> int:
        return int((parent.outputs or {}).get("iterationCount", 0))

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        it = self._iteration(parent)
        return [ResolvedTask(task=t, parent_id=parent.id, iteration=it) for t in self.tasks]

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        if parent.outputs is None:
            parent.outputs = {"iterationCount": 0}
        children = self.child_tasks(ctx, parent)
        if not fu.task_runs_for(ctx.execution, children, parent):
            if parent.next_date is not None and ctx.now < parent.next_date:
                return []
        return fu.resolve_sequential_nexts(ctx.execution, children, [], [], parent)

    def resolve_state(self, ctx: ResolveContext, parent: TaskRun) -> State | None:
        children = fu.enabled(self.child_tasks(ctx, parent))
        if not fu.is_terminated(ctx.execution, children, parent):
            return None
        final = fu.guess_final_state(ctx.execution, children, parent)
        if final in (State.FAILED, State.KILLED):
            return final
        if is_true(ctx.render(self.condition, parent)):
            return State.SUCCESS
        it = self._iteration(parent) + 1
        frequency = self.check_frequency

        def render(value: str) -> object:
            return ctx.render_typed(value, parent)

        started = parent.state.start_date or ctx.now
        max_duration: timedelta = resolve(frequency.max_duration, render)
        if it >= resolve(frequency.max_iterations, render) or ctx.now - started >= max_duration:
            return State.FAILED if resolve(self.fail_on_max_reached, render) else State.SUCCESS
        parent.outputs = {"iterationCount": it}
        interval: timedelta = resolve(frequency.interval, render)
        if interval:
            parent.next_date = ctx.now + interval
            ctx.wake_at(parent, parent.next_date)
        return None
