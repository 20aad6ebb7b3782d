"""Pure Schedule evaluation with a fixed clock (Kestra's ScheduleTest semantics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from common.flow.parser import parse_flow
from common.models.flow import Flow
from common.models.trigger import TriggerState
from common.plugins.core.triggers import Schedule
from scheduler import evaluate, next_date, previous_date, scheduled_execution_id
from scheduler.schedule import ScheduleResult

T0 = datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)  # a Wednesday


def make_flow(trigger: dict[str, Any], **flow: Any) -> tuple[Flow, Schedule]:
    body: dict[str, Any] = {
        "id": "sched",
        "namespace": "company.team",
        "tasks": [{"id": "log", "type": "io.kestra.plugin.core.log.Log", "message": "hi"}],
        "triggers": [{"id": "every", "type": "io.kestra.plugin.core.trigger.Schedule", **trigger}],
        **flow,
    }
    parsed = parse_flow(yaml.safe_dump(body))
    schedule = parsed.triggers[0]
    assert isinstance(schedule, Schedule)
    return parsed, schedule


def run(
    flow: Flow, trigger: Schedule, times: list[datetime], state: TriggerState | None = None
) -> tuple[TriggerState | None, list[ScheduleResult]]:
    results = []
    for now in times:
        result = evaluate(flow, trigger, state, now)
        state = result.state
        results.append(result)
    return state, results


def dates(results: list[ScheduleResult]) -> list[str]:
    return [
        ne.execution.trigger.variables["date"]
        for r in results
        for ne in r.executions
        if ne.execution.trigger is not None
    ]


def test_every_minute_first_date_is_after_first_seen_and_next_is_one_minute_later() -> None:
    flow, trigger = make_flow({"cron": "* * * * *"})
    first = evaluate(flow, trigger, None, T0)
    assert first.executions == []
    assert first.changed
    assert first.state.next_execution_date == datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
    second = evaluate(flow, trigger, first.state, T0 + timedelta(seconds=30))
    [new] = second.executions
    execution = new.execution
    assert execution.trigger is not None
    assert execution.trigger.id == "every"
    assert execution.trigger.type == "io.kestra.plugin.core.trigger.Schedule"
    assert execution.trigger.variables == {
        "date": "2024-05-01T10:01:00Z",
        "next": "2024-05-01T10:02:00Z",
        "previous": "2024-05-01T10:00:00Z",
    }
    assert execution.schedule_date == datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
    assert new.id == f"new:{execution.id}" and new.execution_id == execution.id
    assert second.state.next_execution_date == datetime(2024, 5, 1, 10, 2, tzinfo=UTC)
    assert second.state.last_execution_id == execution.id
    # nothing more until the next minute
    third = evaluate(flow, trigger, second.state, T0 + timedelta(seconds=59))
    assert third.executions == [] and not third.changed


def test_monthly_cron_next_and_previous_are_one_month_away() -> None:
    flow, trigger = make_flow({"cron": "0 0 1 * *"})
    state, results = run(flow, trigger, [T0, datetime(2024, 6, 1, 0, 0, 5, tzinfo=UTC)])
    assert dates(results) == ["2024-06-01T00:00:00Z"]
    variables = results[1].executions[0].execution.trigger.variables  # type: ignore[union-attr]
    assert variables["next"] == "2024-07-01T00:00:00Z"
    assert variables["previous"] == "2024-05-01T00:00:00Z"
    assert state is not None and state.next_execution_date == datetime(2024, 7, 1, tzinfo=UTC)


def test_timezone_across_spring_forward() -> None:
    flow, trigger = make_flow({"cron": "0 2 * * *", "timezone": "Europe/Paris"})
    # 02:00 does not exist in Paris on 2024-03-31: it fires at 03:00 summer time (01:00 UTC)
    start = datetime(2024, 3, 30, 12, tzinfo=UTC)
    times = [
        start,
        datetime(2024, 3, 31, 1, 0, 1, tzinfo=UTC),
        datetime(2024, 4, 1, 0, 0, 1, tzinfo=UTC),
    ]
    _, results = run(flow, trigger, times)
    assert dates(results) == ["2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00"]
    variables = results[1].executions[0].execution.trigger.variables  # type: ignore[union-attr]
    assert variables["previous"] == "2024-03-30T02:00:00+01:00"


def test_timezone_across_fall_back() -> None:
    _, daily = make_flow({"cron": "30 2 * * *", "timezone": "Europe/Paris"})
    # a fixed-hour job fires once in the repeated hour, in the first pass
    first = next_date(daily, datetime(2024, 10, 26, 12, tzinfo=UTC))
    assert first == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert next_date(daily, first) == datetime(2024, 10, 28, 1, 30, tzinfo=UTC)
    _, half_hourly = make_flow({"cron": "*/30 * * * *", "timezone": "Europe/Paris"})
    # a wildcard-hour job fires in both passes: 02:00+02, 02:30+02, 02:00+01, 02:30+01
    out, at = [], datetime(2024, 10, 26, 23, 50, tzinfo=UTC)
    for _ in range(5):
        at = next_date(half_hourly, at)
        out.append(at.strftime("%H:%M"))
    assert out == ["00:00", "00:30", "01:00", "01:30", "02:00"]
    assert previous_date(half_hourly, datetime(2024, 10, 27, 2, tzinfo=UTC)) == datetime(
        2024, 10, 27, 1, 30, tzinfo=UTC
    )


def test_with_seconds() -> None:
    flow, trigger = make_flow({"cron": "*/10 * * * * *", "withSeconds": True})
    state, results = run(flow, trigger, [T0, T0 + timedelta(seconds=10)])
    assert dates(results) == ["2024-05-01T10:00:40Z"]
    variables = results[1].executions[0].execution.trigger.variables  # type: ignore[union-attr]
    assert variables["next"] == "2024-05-01T10:00:50Z"
    assert variables["previous"] == "2024-05-01T10:00:30Z"


def test_hourly_alias() -> None:
    flow, trigger = make_flow({"cron": "@hourly"})
    _, results = run(flow, trigger, [T0, datetime(2024, 5, 1, 11, 0, 1, tzinfo=UTC)])
    assert dates(results) == ["2024-05-01T11:00:00Z"]
    variables = results[1].executions[0].execution.trigger.variables  # type: ignore[union-attr]
    assert variables["next"] == "2024-05-01T12:00:00Z"
    assert variables["previous"] == "2024-05-01T10:00:00Z"


def test_catch_up_fires_every_missed_date_in_order() -> None:
    flow, trigger = make_flow({"cron": "* * * * *"})
    _, results = run(flow, trigger, [T0, T0 + timedelta(minutes=3)])
    assert dates(results) == [
        "2024-05-01T10:01:00Z",
        "2024-05-01T10:02:00Z",
        "2024-05-01T10:03:00Z",
    ]


def test_recover_missed_schedules_last_and_none() -> None:
    flow, last = make_flow({"cron": "* * * * *", "recoverMissedSchedules": "LAST"})
    state = evaluate(flow, last, None, T0).state
    later = T0 + timedelta(minutes=5)
    result = evaluate(flow, last, state, later, recovering=True)
    assert dates([result]) == ["2024-05-01T10:05:00Z"]
    flow, none = make_flow({"cron": "* * * * *", "recoverMissedSchedules": "NONE"})
    state = evaluate(flow, none, None, T0).state
    result = evaluate(flow, none, state, later, recovering=True)
    assert result.executions == []
    assert result.state.next_execution_date == datetime(2024, 5, 1, 10, 6, tzinfo=UTC)


def test_backfill_replays_one_date_per_evaluation_in_order() -> None:
    start = (T0 - timedelta(minutes=5)).isoformat()
    flow, trigger = make_flow(
        {"cron": "* * * * *", "backfill": {"start": start, "labels": {"backfill": "yes"}}}
    )
    state, results = run(flow, trigger, [T0 + timedelta(seconds=i) for i in range(7)])
    assert dates(results) == [
        "2024-05-01T09:56:00Z",
        "2024-05-01T09:57:00Z",
        "2024-05-01T09:58:00Z",
        "2024-05-01T09:59:00Z",
        "2024-05-01T10:00:00Z",
    ]
    assert [len(r.executions) for r in results] == [1, 1, 1, 1, 1, 0, 0]
    assert state is not None and state.backfill is None
    assert state.next_execution_date == datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
    labels = results[0].executions[0].execution.label_map()
    assert labels["backfill"] == "yes"


def test_late_maximum_delay_skips_and_logs() -> None:
    flow, trigger = make_flow({"cron": "* * * * *", "lateMaximumDelay": "PT90S"})
    _, results = run(flow, trigger, [T0, T0 + timedelta(minutes=3)])
    # 10:01 and 10:02... evaluated at 10:03:30: 10:01 is 150 s late, 10:02 is 90 s (kept)
    assert dates(results) == ["2024-05-01T10:02:00Z", "2024-05-01T10:03:00Z"]
    [skipped] = results[1].logs
    assert skipped.level == "WARN" and "10:01:00Z" in skipped.message
    assert skipped.trigger_id == "every"


def test_day_week_condition_filters_dates() -> None:
    flow, trigger = make_flow(
        {
            "cron": "0 8 * * *",
            "conditions": [
                {"type": "io.kestra.plugin.core.condition.DayWeek", "dayOfWeek": "FRIDAY"}
            ],
        }
    )
    days = [datetime(2024, 5, d, 8, 0, 1, tzinfo=UTC) for d in range(1, 8)]
    _, results = run(flow, trigger, [T0, *days])
    assert dates(results) == ["2024-05-03T08:00:00Z"]  # the only Friday
    assert any("conditions not met" in log.message for r in results for log in r.logs)


def test_execution_id_is_derived_from_the_scheduled_date() -> None:
    flow, trigger = make_flow({"cron": "* * * * *"})
    state = evaluate(flow, trigger, None, T0).state
    a = evaluate(flow, trigger, state, T0 + timedelta(minutes=1)).executions[0]
    b = evaluate(flow, trigger, state, T0 + timedelta(minutes=1, seconds=20)).executions[0]
    assert a.execution_id == b.execution_id
    date = datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
    expected = scheduled_execution_id("main", "company.team", "sched", "every", date)
    assert a.execution_id == expected
    assert scheduled_execution_id("main", "company.team", "sched", "other", date) != expected
    assert scheduled_execution_id("t2", "company.team", "sched", "every", date) != expected


def test_inputs_merged_over_flow_defaults_and_labels_added() -> None:
    flow, trigger = make_flow(
        {"cron": "* * * * *", "inputs": {"name": "scheduled"}, "labels": {"from": "trigger"}},
        labels={"team": "data"},
        inputs=[
            {"id": "name", "type": "STRING", "defaults": "default"},
            {"id": "count", "type": "INT", "defaults": 3},
        ],
    )
    state = evaluate(flow, trigger, None, T0).state
    [new] = evaluate(flow, trigger, state, T0 + timedelta(minutes=1)).executions
    assert new.execution.inputs == {"name": "scheduled", "count": 3}
    assert not new.validate_inputs
    labels = new.execution.label_map()
    assert labels["team"] == "data" and labels["from"] == "trigger"


def test_invalid_inputs_are_left_to_the_executor_to_fail() -> None:
    flow, trigger = make_flow(
        {"cron": "* * * * *", "inputs": {"count": "many"}},
        inputs=[{"id": "count", "type": "INT"}],
    )
    state = evaluate(flow, trigger, None, T0).state
    [new] = evaluate(flow, trigger, state, T0 + timedelta(minutes=1)).executions
    assert new.validate_inputs and new.execution.inputs == {"count": "many"}


def test_disabled_trigger_or_flow_creates_nothing_and_does_not_flood_when_enabled() -> None:
    flow, trigger = make_flow({"cron": "* * * * *", "disabled": True})
    state, results = run(flow, trigger, [T0, T0 + timedelta(minutes=5)])
    assert dates(results) == []
    assert state is not None
    assert state.next_execution_date == datetime(2024, 5, 1, 10, 6, tzinfo=UTC)
    enabled = trigger.model_copy(update={"disabled": False})
    _, results = run(flow, enabled, [T0 + timedelta(minutes=6, seconds=1)], state)
    assert dates(results) == ["2024-05-01T10:06:00Z"]

    flow, trigger = make_flow({"cron": "* * * * *"}, disabled=True)
    _, results = run(flow, trigger, [T0, T0 + timedelta(minutes=5)])
    assert dates(results) == []

    flow, trigger = make_flow({"cron": "* * * * *"})
    state = evaluate(flow, trigger, None, T0).state.model_copy(update={"disabled": True})
    _, results = run(flow, trigger, [T0 + timedelta(minutes=2)], state)
    assert dates(results) == []


def test_cron_change_restarts_from_now() -> None:
    flow, trigger = make_flow({"cron": "0 0 1 * *"})
    state = evaluate(flow, trigger, None, T0).state
    changed = trigger.model_copy(update={"cron": "* * * * *"})
    result = evaluate(flow, changed, state, T0 + timedelta(seconds=5))
    assert result.executions == []
    assert result.state.next_execution_date == datetime(2024, 5, 1, 10, 1, tzinfo=UTC)


def test_bad_timezone_is_an_error_log_not_an_exception() -> None:
    flow, trigger = make_flow({"cron": "* * * * *", "timezone": "Mars/Olympus"})
    result = evaluate(flow, trigger, None, T0)
    assert result.executions == []
    assert result.logs and result.logs[0].level == "ERROR"


def test_state_round_trips_as_json() -> None:
    flow, trigger = make_flow({"cron": "* * * * *", "backfill": {"start": "2024-05-01T09:00:00Z"}})
    state = evaluate(flow, trigger, None, T0).state
    body = state.to_json()
    assert b'"nextExecutionDate"' in body and b'"flowId"' in body
    assert TriggerState.model_validate_json(body) == state
    assert state.uid == "main/company.team/sched/every"


def _daily_dates(conditions: list[dict[str, Any]], days: int, **trigger: Any) -> list[str]:
    """The dates a daily 08:00 schedule fires over ``days`` days from 2024-05-01."""
    flow, schedule = make_flow({"cron": "0 8 * * *", "conditions": conditions, **trigger})
    start = datetime(2024, 4, 30, 12, tzinfo=UTC)
    times = [start + timedelta(days=d) for d in range(days + 1)]
    return dates(run(flow, schedule, times)[1])


def test_day_week_in_month_fires_on_the_first_and_the_last_monday() -> None:
    condition = "io.kestra.plugin.core.condition.DayWeekInMonth"
    first = _daily_dates([{"type": condition, "dayOfWeek": "MONDAY", "dayInMonth": "FIRST"}], 61)
    assert first == ["2024-05-06T08:00:00Z", "2024-06-03T08:00:00Z"]
    last = _daily_dates([{"type": condition, "dayOfWeek": "MONDAY", "dayInMonth": "LAST"}], 61)
    assert last == ["2024-05-27T08:00:00Z", "2024-06-24T08:00:00Z"]
    third = _daily_dates([{"type": condition, "dayOfWeek": "FRIDAY", "dayInMonth": "THIRD"}], 31)
    assert third == ["2024-05-17T08:00:00Z"]


def test_date_time_between_keeps_the_dates_of_its_window() -> None:
    window = {
        "type": "io.kestra.plugin.core.condition.DateTimeBetween",
        "after": "2024-05-03T08:00:00Z",  # strictly after: the 3rd is out
        "before": "2024-05-06T00:00:00+02:00",
    }
    assert _daily_dates([window], 10) == ["2024-05-04T08:00:00Z", "2024-05-05T08:00:00Z"]


def test_weekend_and_time_between_in_the_trigger_time_zone() -> None:
    weekend = {"type": "io.kestra.plugin.core.condition.Weekend"}
    assert _daily_dates([weekend], 7) == ["2024-05-04T08:00:00Z", "2024-05-05T08:00:00Z"]
    hourly = make_flow(
        {
            "cron": "0 * * * *",
            "timezone": "Europe/Paris",
            "conditions": [
                {
                    "type": "io.kestra.plugin.core.condition.TimeBetween",
                    "after": "09:30:00",
                    "before": "12:00:00",
                }
            ],
        }
    )
    start = datetime(2024, 5, 1, 0, 30, tzinfo=UTC)
    fired = dates(run(*hourly, [start + timedelta(hours=h) for h in range(25)])[1])
    # 10:00 and 11:00 Paris time (UTC+2 in May)
    assert fired == ["2024-05-01T10:00:00+02:00", "2024-05-01T11:00:00+02:00"]


def test_a_date_window_without_bounds_or_offset_is_refused() -> None:
    import pytest

    from common.errors import FlowValidationError

    for window, message in (
        ({}, "set after, before or both"),
        ({"after": "2024-05-03T08:00:00"}, "time zone offset"),
    ):
        with pytest.raises(FlowValidationError, match=message):
            make_flow(
                {
                    "cron": "0 8 * * *",
                    "conditions": [
                        {"type": "io.kestra.plugin.core.condition.DateTimeBetween", **window}
                    ],
                }
            )
