"""LoopUntil (and its older name WaitFor): run the tasks again and again until the condition
is true.

Kestra's counting (``LoopUntil``/``WaitFor`` and ``LoopUntilCaseTest``): the loop's task run
starts with ``iterationCount: 1``; the condition is rendered once every child of an iteration
ended without failure. True: the loop ends SUCCESS and ``iterationCount`` is the number of
iterations run. False: the count goes up by one and, once it is over ``maxIterations`` (or
``maxDuration`` has passed since the loop started), the loop ends FAILED when
``failOnMaxReached`` else SUCCESS; otherwise the next iteration starts ``interval`` later.
LoopUntil's defaults are Kestra 0.23's (``interval: PT1M``, no maximums); WaitFor keeps the
older ones (100 iterations, one hour, one second).
"""

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
    interval: DynamicDuration = timedelta(minutes=1)
    max_iterations: DynamicPositive | None = Field(default=None, alias="maxIterations")
    max_duration: DynamicDuration | None = Field(default=None, alias="maxDuration")


class LegacyCheckFrequency(CheckFrequency):
    interval: DynamicDuration = timedelta(seconds=1)
    max_iterations: DynamicPositive | None = Field(default=100, alias="maxIterations")
    max_duration: DynamicDuration | None = Field(default=timedelta(hours=1), alias="maxDuration")


class LoopUntil(WithChildren):
    TYPE: ClassVar[str] = "lanner.core.flow.LoopUntil"
    condition: str
    check_frequency: CheckFrequency = Field(default_factory=CheckFrequency, alias="checkFrequency")
    fail_on_max_reached: DynamicBool = Field(default=False, alias="failOnMaxReached")

    @staticmethod
    def _iteration(parent: TaskRun) -> int:
        return int((parent.outputs or {}).get("iterationCount", 1))

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        it = self._iteration(parent)
        return [ResolvedTask(task=t, parent_id=parent.id, iteration=it) for t in self.tasks]

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        if parent.outputs is None:
            parent.outputs = {"iterationCount": 1}
        children = self.child_tasks(ctx, parent)
        if not fu.task_runs_for(ctx.execution, children, parent):
            if parent.next_date is not None and ctx.now < parent.next_date:
                return []
        # `finally` is not run by a loop (Kestra's resolveWaitForNext takes no finally either)
        errors = self.error_tasks(ctx, parent)
        return fu.resolve_sequential_nexts(ctx.execution, children, errors, [], parent)

    def resolve_state(self, ctx: ResolveContext, parent: TaskRun) -> State | None:
        children = fu.enabled(self.child_tasks(ctx, parent))
        errors = self.error_tasks(ctx, parent)
        if fu.has_failed(ctx.execution, children, parent):
            return fu.resolve_state(ctx.execution, children, errors, [], parent)
        if not fu.is_terminated(ctx.execution, children, parent):
            return None
        if is_true(ctx.render(self.condition, parent)):
            return State.SUCCESS
        it = self._iteration(parent) + 1
        frequency = self.check_frequency

        def render(value: str) -> object:
            return ctx.render_typed(value, parent)

        parent.outputs = {"iterationCount": it}
        started = parent.state.start_date or ctx.now
        max_iterations: int | None = resolve(frequency.max_iterations, render)
        max_duration: timedelta | None = resolve(frequency.max_duration, render)
        if (max_iterations is not None and it > max_iterations) or (
            max_duration is not None and ctx.now - started >= max_duration
        ):
            failed = resolve(self.fail_on_max_reached, render)
            return State.FAILED if failed else State.SUCCESS
        interval: timedelta = resolve(frequency.interval, render)
        if interval:
            parent.next_date = ctx.now + interval
            ctx.wake_at(parent, parent.next_date)
        return None


class WaitFor(LoopUntil):
    TYPE: ClassVar[str] = "lanner.core.flow.WaitFor"
    check_frequency: LegacyCheckFrequency = Field(  # type: ignore[assignment]
        default_factory=LegacyCheckFrequency, alias="checkFrequency"
    )
