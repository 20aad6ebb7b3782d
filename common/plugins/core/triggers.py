"""Core triggers: Schedule (scheduler), Flow (executor), Webhook (webserver)."""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from common.plugins.base import FlowModel, Trigger
from common.plugins.registry import AnyCondition


class Backfill(FlowModel):
    start: str
    end: str | None = None
    inputs: dict[str, Any] | None = None
    labels: Any = None


@functools.lru_cache(maxsize=4096)
def _cron_is_valid(expression: str) -> bool:
    """Checked once per expression: a scheduler loading 100,000 flows sees few distinct ones."""
    from croniter import croniter

    return bool(croniter.is_valid(expression))


class Schedule(Trigger):
    TYPE: ClassVar[str] = "lanner.core.trigger.Schedule"
    cron: str
    timezone: str = "UTC"
    with_seconds: bool = Field(default=False, alias="withSeconds")
    backfill: Backfill | None = None
    late_maximum_delay: str | None = Field(default=None, alias="lateMaximumDelay")
    recover_missed_schedules: Literal["LAST", "NONE", "ALL"] | None = Field(
        default=None, alias="recoverMissedSchedules"
    )
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: Any = None
    conditions: list[AnyCondition] = Field(default_factory=list)  # type: ignore[assignment]
    schedule_conditions: list[AnyCondition] = Field(
        default_factory=list, alias="scheduleConditions"
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        aliases = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}
        if value.strip() in aliases:
            return value
        if not _cron_is_valid(value):
            raise ValueError(f"'{value}' is not a valid cron expression")
        return value


class FlowPreconditionFlow(FlowModel):
    namespace: str
    flow_id: str = Field(alias="flowId")
    states: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)


class TimeWindow(FlowModel):
    """Where the matches of a Flow trigger's preconditions must all fall (Kestra's timeWindow).

    DURATION_WINDOW: fixed windows of ``window`` (default PT24H) from midnight, shifted by
    ``windowAdvance``; SLIDING_WINDOW: the last ``window``; DAILY_TIME_WINDOW: between
    ``startTime`` and ``endTime`` of each day; DAILY_TIME_DEADLINE: each day until ``deadline``.
    """

    type: Literal[
        "DURATION_WINDOW", "SLIDING_WINDOW", "DAILY_TIME_WINDOW", "DAILY_TIME_DEADLINE"
    ] = "DURATION_WINDOW"
    window: str | None = None
    window_advance: str | None = Field(default=None, alias="windowAdvance")
    start_time: str | None = Field(default=None, alias="startTime")
    end_time: str | None = Field(default=None, alias="endTime")
    deadline: str | None = None


class WhereFilter(FlowModel):
    field: Literal["FLOW_ID", "NAMESPACE", "STATE", "EXPRESSION"]
    type: Literal[
        "EQUAL_TO",
        "NOT_EQUAL_TO",
        "IS_NULL",
        "IS_NOT_NULL",
        "IS_TRUE",
        "IS_FALSE",
        "STARTS_WITH",
        "ENDS_WITH",
        "CONTAINS",
        "REGEX",
        "IN",
        "NOT_IN",
    ]
    value: Any = None
    values: list[Any] | None = None


class WhereCondition(FlowModel):
    """One precondition over executions of any flow: its filters, joined by ``operand``."""

    id: str
    operand: Literal["AND", "OR"] = "AND"
    filters: list[WhereFilter] = Field(min_length=1)


class Preconditions(FlowModel):
    id: str | None = None
    flows: list[FlowPreconditionFlow] = Field(default_factory=list)
    where: list[WhereCondition] = Field(default_factory=list)
    time_window: TimeWindow | None = Field(default=None, alias="timeWindow")
    reset_on_success: bool = Field(default=True, alias="resetOnSuccess")


class FlowTrigger(Trigger):
    """Starts an execution when another execution changes state (by default: ends) and the
    conditions and preconditions hold."""

    TYPE: ClassVar[str] = "lanner.core.trigger.Flow"
    conditions: list[AnyCondition] = Field(default_factory=list)  # type: ignore[assignment]
    inputs: dict[str, Any] = Field(default_factory=dict)
    states: list[str] = Field(default_factory=list)
    preconditions: Preconditions | None = None


class Webhook(Trigger):
    TYPE: ClassVar[str] = "lanner.core.trigger.Webhook"
    key: str = Field(min_length=1)
    conditions: list[AnyCondition] = Field(default_factory=list)  # type: ignore[assignment]
    inputs: dict[str, Any] = Field(default_factory=dict)
    wait: bool = False
    return_outputs: bool = Field(default=False, alias="returnOutputs")


PLUGINS: list[type] = [Schedule, FlowTrigger, Webhook]
