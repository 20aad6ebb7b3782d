"""Schedule trigger evaluation: pure functions of (flow, trigger, stored state, now).

No I/O and no clock reads, so the embedded loop, a Kafka scheduler and the tests all get the same
answer for the same inputs.

Semantics (Kestra's ``Schedule``):

- The cron runs in the trigger's ``timezone`` on wall-clock time: 5 fields, 6 with
  ``withSeconds`` (seconds first), or ``@hourly``-style aliases. A local time skipped by a DST
  change fires at the same instant as the shifted time; a repeated hour (DST end) fires in both
  passes when the cron's hour field is a wildcard (``*/15 * * * *``), once otherwise (a daily
  job at 02:30).
- A trigger seen for the first time fires first at the next cron date *after* ``now``: deploying a
  flow never floods past dates. Changing ``cron``/``timezone``/``withSeconds`` starts over the same
  way.
- Due dates fire in order, up to ``max_dates`` per evaluation. A date later than
  ``lateMaximumDelay`` is skipped and logged; a date refused by ``conditions`` or
  ``scheduleConditions`` is skipped and logged.
- ``recovering=True`` (first evaluation after a scheduler start) applies
  ``recoverMissedSchedules``: ``ALL`` (default) fires every missed date, ``LAST`` only the latest,
  ``NONE`` none.
- ``backfill.start`` replays the cron dates from ``start`` up to ``end`` (default: the time the
  trigger was first seen), one per evaluation, in order, alongside the regular schedule.
- The execution id is derived from (tenant, namespace, flow, trigger, date): evaluating the same
  date twice (fail-over, crash before the state was stored) gives the same execution, which the
  executor applies once.
- A disabled flow or trigger creates nothing; its next date keeps moving so that re-enabling it
  does not fire the dates it missed.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]

from common.errors import InputValidationError
from common.executions import new_execution
from common.flow.inputs import validate_inputs
from common.ids import derived_id
from common.models.execution import ExecutionTrigger
from common.models.flow import Flow
from common.models.messages import LogEntry, NewExecution
from common.models.trigger import BackfillState, TriggerState
from common.plugins.base import parse_duration
from common.plugins.core.conditions import ConditionContext
from common.plugins.core.triggers import Schedule

SCHEDULE_TYPE = "io.kestra.plugin.core.trigger.Schedule"
MAX_DATES_PER_EVALUATION = 100
# how far croniter may search for a date before the expression is deemed never matching
_SEARCH_YEARS = 50


@dataclass
class ScheduleResult:
    """What one evaluation decided: executions to create, the state to store, logs to publish."""

    state: TriggerState
    executions: list[NewExecution] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
    changed: bool = False


# ---------------------------------------------------------------- cron dates


def _zone(trigger: Schedule) -> ZoneInfo:
    return ZoneInfo(trigger.timezone)


class _Croniter(croniter):  # type: ignore[misc]
    """croniter that expands each expression once: expanding it again for every date took
    60% of a scheduler tick. Instances copy the expansion before changing it."""

    @classmethod
    def expand(  # type: ignore[override]
        cls,
        expr_format: str,
        hash_id: Any = None,
        second_at_beginning: Any = False,
        from_timestamp: Any = None,
    ) -> Any:
        if hash_id is not None or from_timestamp is not None:
            return super().expand(expr_format, hash_id, second_at_beginning, from_timestamp)
        return _expanded(expr_format, second_at_beginning)


@functools.lru_cache(maxsize=4096)
def _expanded(expr_format: str, second_at_beginning: Any) -> Any:
    return croniter.expand(expr_format, second_at_beginning=second_at_beginning)


def _croniter(trigger: Schedule, start: datetime, is_prev: bool) -> croniter:
    expression = trigger.cron.strip()
    if expression == "@midnight":
        expression = "@daily"
    return _Croniter(
        expression,
        start,
        is_prev=is_prev,
        second_at_beginning=trigger.with_seconds or None,
        max_years_between_matches=_SEARCH_YEARS,
    )


def next_date(trigger: Schedule, after: datetime) -> datetime:
    """The first cron date strictly after ``after``, as an aware UTC datetime.

    Raises:
        ValueError: the cron expression never matches, or the timezone is unknown.
    """
    return _step(trigger, after, forward=True)


def previous_date(trigger: Schedule, before: datetime) -> datetime:
    """The last cron date strictly before ``before``, as an aware UTC datetime."""
    return _step(trigger, before, forward=False)


_STEPS: dict[tuple[str, str, bool, datetime, bool], datetime] = {}
_MAX_STEPS = 65536


def _step(trigger: Schedule, origin: datetime, *, forward: bool) -> datetime:
    # many triggers share a cron and fire at the same instants: each step is computed once
    # (a pure function of these five values; an error is raised again each time, never kept)
    key = (trigger.cron, trigger.timezone, bool(trigger.with_seconds), _utc(origin), forward)
    found = _STEPS.get(key)
    if found is None:
        found = _compute_step(trigger, origin, forward=forward)
        if len(_STEPS) >= _MAX_STEPS:
            _STEPS.clear()
        _STEPS[key] = found
    return found


def _compute_step(trigger: Schedule, origin: datetime, *, forward: bool) -> datetime:
    try:
        zone = _zone(trigger)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone '{trigger.timezone}'") from exc
    origin = _utc(origin)
    # Cron matches wall-clock time: iterate on naive local times and map each back to instants.
    # Inside a repeated hour (DST end) naive order and instant order differ, so the scan starts
    # one repetition earlier (later, backwards) and keeps the closest instant found.
    local = origin.astimezone(zone).replace(tzinfo=None)
    if not forward and local.microsecond:
        local = local.replace(microsecond=0) + timedelta(seconds=1)
    repeated = _repeated(local, zone)
    start = local - repeated if forward else local + repeated
    it = _croniter(trigger, start, is_prev=not forward)
    both = _every_hour(trigger)
    best: datetime | None = None
    for _ in range(100_000):
        try:
            candidate: datetime = it.get_next(datetime) if forward else it.get_prev(datetime)
        except Exception as exc:  # croniter raises its own CroniterBadDateError
            raise ValueError(f"cron '{trigger.cron}' has no matching date") from exc
        instants = _instants(candidate, zone, both)
        if best is not None and (min(instants) > best if forward else max(instants) < best):
            return best
        for instant in instants:
            if forward and instant > origin and (best is None or instant < best):
                best = instant
            elif not forward and instant < origin and (best is None or instant > best):
                best = instant
    raise ValueError(f"cron '{trigger.cron}' has no matching date")


def _repeated(local: datetime, zone: ZoneInfo) -> timedelta:
    """How long the wall clock repeats around ``local`` (zero outside a DST-end repetition)."""
    first = local.replace(tzinfo=zone, fold=0).utcoffset() or timedelta()
    second = local.replace(tzinfo=zone, fold=1).utcoffset() or timedelta()
    return abs(first - second)


def _every_hour(trigger: Schedule) -> bool:
    """Whether the hour field is a wildcard: such a cron fires in both passes of a repeated hour;
    one with fixed hours (a daily job at 02:30) fires once, in the first pass, as cron does."""
    fields = trigger.cron.split()
    if len(fields) == 1:
        return fields[0] == "@hourly"
    hour = fields[2 if trigger.with_seconds else 1] if len(fields) > 2 else ""
    return hour.startswith("*")


def _instants(local: datetime, zone: ZoneInfo, both_passes: bool) -> list[datetime]:
    """The instants a naive local time denotes: two in a repeated hour (when ``both_passes``),
    one otherwise.

    A local time skipped by a DST change denotes the instant the clock showed it shifted by the
    change (02:30 on a spring-forward night is 03:30 summer time), whichever fold is asked.
    """
    out: list[datetime] = []
    for fold in (0, 1) if both_passes else (0,):
        instant = local.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        exists = instant.astimezone(zone).replace(tzinfo=None) == local
        if not exists:
            instant = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
        if instant not in out:
            out.append(instant)
    return out


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime, zone: ZoneInfo | None = None) -> str:
    """ISO-8601 with the zone's offset (``Z`` for UTC), like Java's ``ISO_OFFSET_DATE_TIME``."""
    local = value.astimezone(zone) if zone is not None else _utc(value)
    text = local.isoformat(timespec="microseconds" if local.microsecond else "seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def trigger_variables(trigger: Schedule, date: datetime) -> dict[str, Any]:
    """``trigger.date``, ``trigger.next`` and ``trigger.previous`` of the execution at ``date``."""
    zone = _zone(trigger)
    return {
        "date": iso(date, zone),
        "next": iso(next_date(trigger, date), zone),
        "previous": iso(previous_date(trigger, date), zone),
    }


def fingerprint(trigger: Schedule) -> str:
    text = f"{trigger.cron.strip()}|{trigger.timezone}|{trigger.with_seconds}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def scheduled_execution_id(
    tenant_id: str, namespace: str, flow_id: str, trigger_id: str, date: datetime
) -> str:
    """The id of the execution a trigger creates for ``date``: the same for every replica."""
    return derived_id(tenant_id, namespace, flow_id, trigger_id, iso(date))


# ---------------------------------------------------------------- evaluation


def evaluate(
    flow: Flow,
    trigger: Schedule,
    state: TriggerState | None,
    now: datetime,
    *,
    tenant_id: str | None = None,
    recovering: bool = False,
    max_dates: int = MAX_DATES_PER_EVALUATION,
) -> ScheduleResult:
    """Evaluate one Schedule trigger at ``now``.

    Args:
        flow: the flow declaring the trigger (its latest revision).
        trigger: one of ``flow.triggers``.
        state: what was stored after the previous evaluation, or None the first time.
        now: the current time (aware).
        tenant_id: the flow's tenant (defaults to ``flow.tenant_id`` or ``main``).
        recovering: first evaluation since the scheduler started: apply
            ``recoverMissedSchedules`` to dates missed while it was down.
        max_dates: how many regular dates may fire in this evaluation (catch-up bound).

    Returns:
        The executions to emit, the new state (store it in the same transaction as the emitted
        executions) and logs. Never raises for a bad trigger: the problem becomes an ERROR log.
    """
    return _Evaluation(flow, trigger, state, _utc(now), tenant_id, recovering, max_dates).run()


class _Evaluation:
    def __init__(
        self,
        flow: Flow,
        trigger: Schedule,
        state: TriggerState | None,
        now: datetime,
        tenant_id: str | None,
        recovering: bool,
        max_dates: int,
    ) -> None:
        self.flow = flow
        self.trigger = trigger
        self.now = now
        self.tenant = tenant_id or flow.tenant_id or "main"
        self.recovering = recovering
        self.max_dates = max_dates
        self.original = state
        self.state = state or TriggerState(
            tenant_id=self.tenant,
            namespace=flow.namespace,
            flow_id=flow.id,
            trigger_id=trigger.id,
        )
        self.result = ScheduleResult(state=self.state)
        self.changes: dict[str, Any] = {}

    def update(self, **changes: Any) -> None:
        """Change the state; the changes are applied in one copy at the end of ``run`` (a copy
        per change was a third of the cost of a tick with every trigger due)."""
        self.changes.update(changes)

    def current(self, field: str) -> Any:
        return self.changes[field] if field in self.changes else getattr(self.state, field)

    def log(self, level: str, message: str) -> None:
        self.result.logs.append(
            LogEntry(
                tenant_id=self.tenant,
                namespace=self.flow.namespace,
                flow_id=self.flow.id,
                trigger_id=self.trigger.id,
                timestamp=self.now,
                level=level,  # type: ignore[arg-type]
                message=message,
            )
        )

    def run(self) -> ScheduleResult:
        try:
            self.initialize()
            if self.flow.disabled or self.trigger.disabled or self.current("disabled"):
                self.skip_while_disabled()
            else:
                if self.recovering:
                    self.recover()
                self.run_backfill()
                self.run_regular()
        except ValueError as exc:
            self.log("ERROR", f"Schedule '{self.trigger.id}' cannot be evaluated: {exc}")
        changed = self.original is None or any(
            getattr(self.original, field) != value for field, value in self.changes.items()
        )
        if changed:
            self.update(date=self.now, flow_revision=self.flow.revision)
            self.state = self.state.model_copy(update=self.changes)
            self.result.changed = True
        self.result.state = self.state
        return self.result

    def initialize(self) -> None:
        print_ = fingerprint(self.trigger)
        first_time = self.current("next_execution_date") is None
        if not first_time and self.current("fingerprint") == print_:
            return
        changes: dict[str, Any] = {
            "next_execution_date": next_date(self.trigger, self.now),
            "fingerprint": print_,
        }
        backfill = self.trigger.backfill
        if first_time and backfill is not None and backfill.start:
            start = _parse_date(backfill.start, self.trigger)
            end = _parse_date(backfill.end, self.trigger) if backfill.end else self.now
            changes["backfill"] = BackfillState(
                start=start,
                end=end,
                current_date=next_date(self.trigger, start - timedelta(microseconds=1)),
                inputs=backfill.inputs,
                labels=_labels(backfill.labels) or None,
            )
        self.update(**changes)

    def skip_while_disabled(self) -> None:
        due = self.current("next_execution_date")
        if due is not None and due <= self.now:
            self.update(next_execution_date=next_date(self.trigger, self.now))

    def recover(self) -> None:
        due = self.current("next_execution_date")
        if due is None or due > self.now:
            return
        mode = self.trigger.recover_missed_schedules or "ALL"
        if mode == "NONE":
            self.log("INFO", f"Missed schedules from {iso(due)} are not recovered (NONE)")
            self.update(next_execution_date=next_date(self.trigger, self.now))
        elif mode == "LAST":
            last = previous_date(self.trigger, self.now + timedelta(microseconds=1))
            if last > due:
                self.log("INFO", f"Missed schedules from {iso(due)}: only {iso(last)} is recovered")
                self.update(next_execution_date=last)

    def run_backfill(self) -> None:
        backfill = self.current("backfill")
        if backfill is None or backfill.paused:
            return
        current = backfill.current_date
        if current is not None and current <= self.now and _within(current, backfill.end):
            self.fire(current, backfill)
            current = next_date(self.trigger, current)
        if current is None or not _within(current, backfill.end):
            self.log("INFO", f"Backfill from {iso(backfill.start)} is complete")
            self.update(backfill=None)
        else:
            self.update(backfill=backfill.model_copy(update={"current_date": current}))

    def run_regular(self) -> None:
        late_limit = parse_duration(self.trigger.late_maximum_delay)
        due = self.current("next_execution_date")
        fired = 0
        while due is not None and due <= self.now and fired < self.max_dates:
            if late_limit is not None and self.now - due > late_limit:
                self.log(
                    "WARN",
                    f"Schedule date {iso(due)} skipped: evaluated {self.now - due} late, more "
                    f"than lateMaximumDelay {self.trigger.late_maximum_delay}",
                )
            else:
                self.fire(due, None)
            fired += 1
            due = next_date(self.trigger, due)
            self.update(next_execution_date=due)

    def fire(self, date: datetime, backfill: BackfillState | None) -> None:
        variables = trigger_variables(self.trigger, date)
        if not self.conditions_hold(date, variables):
            self.log("INFO", f"Schedule date {iso(date)} skipped: conditions not met")
            return
        raw_inputs = {**self.trigger.inputs, **((backfill.inputs or {}) if backfill else {})}
        check_later = False
        try:
            inputs: dict[str, Any] = validate_inputs(self.flow, raw_inputs)
        except InputValidationError:
            # the executor validates again and fails the execution with the message
            inputs, check_later = raw_inputs, True
        labels = {**_labels(self.trigger.labels), **((backfill.labels or {}) if backfill else {})}
        execution_id = scheduled_execution_id(
            self.tenant, self.flow.namespace, self.flow.id, self.trigger.id, date
        )
        execution = new_execution(
            self.flow,
            inputs,
            labels,
            execution_id=execution_id,
            now=self.now,
            trigger=ExecutionTrigger(id=self.trigger.id, type=SCHEDULE_TYPE, variables=variables),
            schedule_date=date,
            tenant_id=self.tenant,
        )
        self.result.executions.append(
            NewExecution(
                id=f"new:{execution_id}",
                execution_id=execution_id,
                execution=execution,
                validate_inputs=check_later,
            )
        )
        self.update(last_execution_id=execution_id, last_execution_date=date)

    def conditions_hold(self, date: datetime, variables: Mapping[str, Any]) -> bool:
        conditions = [*self.trigger.conditions, *self.trigger.schedule_conditions]
        if not conditions:
            return True
        ctx = ConditionContext(
            namespace=self.flow.namespace,
            flow_id=self.flow.id,
            date=date.astimezone(_zone(self.trigger)),
            variables={
                "trigger": dict(variables),
                "flow": {
                    "id": self.flow.id,
                    "namespace": self.flow.namespace,
                    "revision": self.flow.revision,
                    "tenantId": self.tenant,
                },
                "labels": dict(self.flow.labels),
            },
        )
        for condition in conditions:
            try:
                if not condition.test(ctx):  # type: ignore[attr-defined]
                    return False
            except Exception as exc:  # a plugin's test() failing refuses the date
                self.log("ERROR", f"Condition {condition.type} failed: {exc}")
                return False
        return True


def _within(date: datetime, end: datetime | None) -> bool:
    return end is None or date <= end


def _parse_date(text: str, trigger: Schedule) -> datetime:
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(trigger))
    return parsed.astimezone(UTC)


def _labels(raw: Any) -> dict[str, str]:
    """Trigger labels as a map: Kestra accepts ``{k: v}`` and ``[{key: k, value: v}]``."""
    if isinstance(raw, dict):
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return {
            str(item.get("key")): str(item.get("value"))
            for item in raw
            if isinstance(item, dict) and "key" in item
        }
    return {}
