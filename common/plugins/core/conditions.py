"""Core conditions: filters for Flow and Schedule triggers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from common.models.execution import Execution
from common.plugins.base import Condition
from common.plugins.registry import AnyCondition


@dataclass
class ConditionContext:
    """What a condition is evaluated against: the flow owning the trigger, and for Flow triggers
    the execution that just ended; for Schedule triggers the date being scheduled."""

    namespace: str
    flow_id: str
    execution: Execution | None = None
    date: datetime | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    # the template functions to use instead of the real clock and random source: the executor
    # passes its step's, so evaluating a Flow trigger stays a pure function of its arguments
    functions: Mapping[str, Callable[..., Any]] | None = None


def _when(ctx: ConditionContext) -> datetime | None:
    """The date a date condition tests: the scheduled date, else the execution's start."""
    return ctx.date or (ctx.execution.state.start_date if ctx.execution else None)


class ExecutionStatus(Condition):
    TYPE: ClassVar[str] = "lanner.core.condition.ExecutionStatus"
    in_: list[str] = Field(default_factory=list, alias="in")
    not_in: list[str] = Field(default_factory=list, alias="notIn")

    def test(self, ctx: ConditionContext) -> bool:
        if ctx.execution is None:
            return False
        state = ctx.execution.state.current.value
        if self.in_ and state not in self.in_:
            return False
        return not (self.not_in and state in self.not_in)


class ExecutionFlow(Condition):
    TYPE: ClassVar[str] = "lanner.core.condition.ExecutionFlow"
    namespace: str
    flow_id: str = Field(alias="flowId")

    def test(self, ctx: ConditionContext) -> bool:
        ex = ctx.execution
        return ex is not None and ex.namespace == self.namespace and ex.flow_id == self.flow_id


class ExecutionNamespace(Condition):
    TYPE: ClassVar[str] = "lanner.core.condition.ExecutionNamespace"
    namespace: str
    comparison: Literal["EQUALS", "PREFIX", "SUFFIX"] | None = None
    prefix: bool = False

    def test(self, ctx: ConditionContext) -> bool:
        if ctx.execution is None:
            return False
        ns = ctx.execution.namespace
        comparison = self.comparison or ("PREFIX" if self.prefix else "EQUALS")
        if comparison == "PREFIX":
            return ns.startswith(self.namespace)
        if comparison == "SUFFIX":
            return ns.endswith(self.namespace)
        return ns == self.namespace


class ExecutionLabels(Condition):
    TYPE: ClassVar[str] = "lanner.core.condition.ExecutionLabels"
    labels: dict[str, str] | list[dict[str, str]]

    def test(self, ctx: ConditionContext) -> bool:
        if ctx.execution is None:
            return False
        wanted = (
            self.labels
            if isinstance(self.labels, dict)
            else {i["key"]: i["value"] for i in self.labels}
        )
        have = ctx.execution.label_map()
        return all(have.get(k) == str(v) for k, v in wanted.items())


class Expression(Condition):
    TYPE: ClassVar[str] = "lanner.core.condition.Expression"
    expression: str

    def test(self, ctx: ConditionContext) -> bool:
        from common.templating import render_condition

        return render_condition(self.expression, ctx.variables, functions=ctx.functions)


class Not(Condition):
    TYPE: ClassVar[str] = "lanner.core.condition.Not"
    conditions: list[AnyCondition]

    def test(self, ctx: ConditionContext) -> bool:
        return not any(c.test(ctx) for c in self.conditions)  # type: ignore[attr-defined]


class Or(Condition):
    TYPE: ClassVar[str] = "lanner.core.condition.Or"
    conditions: list[AnyCondition]

    def test(self, ctx: ConditionContext) -> bool:
        return any(c.test(ctx) for c in self.conditions)  # type: ignore[attr-defined]


class DayWeek(Condition):
    TYPE: ClassVar[str] = "lanner.core.condition.DayWeek"
    day_of_week: str = Field(alias="dayOfWeek")
    date: str | None = None

    def test(self, ctx: ConditionContext) -> bool:
        when = _when(ctx)
        return when is not None and when.strftime("%A").upper() == self.day_of_week.upper()


_WEEKS = {"FIRST": 1, "SECOND": 2, "THIRD": 3, "FOURTH": 4}


class DayWeekInMonth(Condition):
    """The date is the FIRST, SECOND, THIRD, FOURTH or LAST ``dayOfWeek`` of its month."""

    TYPE: ClassVar[str] = "lanner.core.condition.DayWeekInMonth"
    day_of_week: Literal[
        "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"
    ] = Field(alias="dayOfWeek")
    day_in_month: Literal["FIRST", "SECOND", "THIRD", "FOURTH", "LAST"] = Field(alias="dayInMonth")
    date: str | None = None

    def test(self, ctx: ConditionContext) -> bool:
        when = _when(ctx)
        if when is None or when.strftime("%A").upper() != self.day_of_week:
            return False
        if self.day_in_month == "LAST":
            return (when + timedelta(days=7)).month != when.month
        return (when.day - 1) // 7 + 1 == _WEEKS[self.day_in_month]


class DateTimeBetween(Condition):
    """The date is strictly after ``after`` and strictly before ``before`` (either optional)."""

    TYPE: ClassVar[str] = "lanner.core.condition.DateTimeBetween"
    after: datetime | None = None
    before: datetime | None = None
    date: str | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> DateTimeBetween:
        if self.after is None and self.before is None:
            raise ValueError("set after, before or both")
        for bound in (self.after, self.before):
            if bound is not None and bound.tzinfo is None:
                raise ValueError(f"{bound.isoformat()} needs a time zone offset (e.g. Z)")
        return self

    def test(self, ctx: ConditionContext) -> bool:
        when = _when(ctx)
        if when is None:
            return False
        return (self.after is None or when > self.after) and (
            self.before is None or when < self.before
        )


class TimeBetween(Condition):
    """The time of day of the date is strictly between ``after`` and ``before``."""

    TYPE: ClassVar[str] = "lanner.core.condition.TimeBetween"
    after: time | None = None
    before: time | None = None
    date: str | None = None

    def test(self, ctx: ConditionContext) -> bool:
        when = _when(ctx)
        if when is None:
            return False
        of_day = when.timetz()

        # a bound with an offset compares at that offset; one without, in the date's own zone
        def at(bound: time) -> datetime:
            zone = bound.tzinfo or when.tzinfo
            return datetime.combine(when.date(), bound.replace(tzinfo=zone))

        moment = datetime.combine(when.date(), of_day)
        return (self.after is None or moment > at(self.after)) and (
            self.before is None or moment < at(self.before)
        )


class Weekend(Condition):
    TYPE: ClassVar[str] = "lanner.core.condition.Weekend"
    date: str | None = None

    def test(self, ctx: ConditionContext) -> bool:
        when = _when(ctx)
        return when is not None and when.weekday() >= 5


class MultipleCondition(Condition):
    """True once every named sub-condition has matched some execution inside the window.

    Its memory (which names matched, in which window) is kept by the executor per trigger; see
    ``executor.flow_triggers``. ``test`` alone is never called.
    """

    TYPE: ClassVar[str] = "lanner.core.condition.MultipleCondition"
    id: str | None = None
    window: str = "P1D"
    window_advance: str | None = Field(default=None, alias="windowAdvance")
    # Kestra's newer spelling of window/windowAdvance (a TimeWindow of the Flow trigger)
    time_window: dict[str, Any] | None = Field(default=None, alias="timeWindow")
    conditions: dict[str, AnyCondition]
    reset_on_success: bool = Field(default=True, alias="resetOnSuccess")

    @field_validator("time_window")
    @classmethod
    def _valid_time_window(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from .triggers import TimeWindow  # triggers import the conditions registry

        if value is not None:
            TimeWindow.model_validate(value)
        return value

    def test(self, ctx: ConditionContext) -> bool:
        raise NotImplementedError("MultipleCondition is evaluated by the executor")


PLUGINS: list[type] = [
    ExecutionStatus,
    ExecutionFlow,
    ExecutionNamespace,
    ExecutionLabels,
    Expression,
    Not,
    Or,
    DayWeek,
    DayWeekInMonth,
    DateTimeBetween,
    TimeBetween,
    Weekend,
    MultipleCondition,
]
