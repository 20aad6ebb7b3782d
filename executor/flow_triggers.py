"""Flow triggers (pure): which executions to start when an execution changes state.

A flow with a ``io.kestra.plugin.core.trigger.Flow`` trigger starts when another execution
reaches a state the trigger watches and every condition holds. ``states:`` defaults to the
terminal states (RETRIED excepted); it may name others (RUNNING, PAUSED...): as in Kestra the
trigger then fires on every matching state change of the watched execution, not only at its end.

``MultipleCondition`` and ``preconditions`` (``flows`` and ``where``) are met by several
executions over time: which of their named conditions matched, and when, is kept per trigger in
a :class:`Windows` state inside a time window (``timeWindow``; MultipleCondition's ``window`` /
``windowAdvance``). That state is passed in and changed in place, so the shell stores it (a
SQLite table, a Faust table); ``evaluate`` returns the keys it changed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError

from common import bounded
from common.errors import LannerError
from common.ids import derived_id
from common.models.base import WireModel
from common.models.execution import Execution, ExecutionTrigger, Label
from common.models.flow import Flow
from common.models.state import State
from common.plugins.base import parse_duration
from common.plugins.core.conditions import ConditionContext, MultipleCondition
from common.plugins.core.triggers import FlowTrigger, Preconditions, TimeWindow, WhereFilter
from common.templating import RenderContext, render_condition, render_object

from ._variables import outputs_map

if TYPE_CHECKING:
    from .kv import KVSnapshot

FLOW_TRIGGER_TYPE = "io.kestra.plugin.core.trigger.Flow"
_DEFAULT_WINDOW = timedelta(hours=24)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Window(WireModel):
    """The matches of one windowed condition: condition name -> when it matched."""

    start: datetime | None = None
    matched: dict[str, datetime] = Field(default_factory=dict)


class Windows(WireModel):
    """Windowed condition state, keyed ``tenant/namespace/flowId/triggerId/condition``."""

    windows: dict[str, Window] = Field(default_factory=dict)


def watched(trigger: FlowTrigger, state: State) -> bool:
    if trigger.states:
        return state.value in trigger.states
    return state.terminal and state != State.RETRIED


def evaluate(
    flows: Iterable[Flow],
    execution: Execution,
    previous: State | None,
    now: datetime,
    windows: Windows,
    disabled: Collection[str] = (),
    kv: KVSnapshot | None = None,
) -> tuple[list[Execution], set[str]]:
    """New executions to create because ``execution`` moved from ``previous`` (None: it is
    new) to its current state, and the keys of ``windows`` changed on the way. ``disabled``:
    uids (``tenant/namespace/flowId/triggerId``) of triggers disabled through the API.
    ``kv``: the entries ``kv()`` reads (``executor.kv.flow_trigger_kv``); None: ``kv()``
    fails as a worker-only function."""
    current = execution.state.current
    if current == previous:
        return [], set()
    created: list[Execution] = []
    changed: set[str] = set()
    for flow in flows:
        if flow.disabled:
            continue
        for trigger in flow.triggers:
            if not isinstance(trigger, FlowTrigger) or trigger.disabled:
                continue
            uid = f"{flow.tenant_id or 'main'}/{flow.namespace}/{flow.id}/{trigger.id}"
            if uid in disabled:
                continue
            if not watched(trigger, current):
                continue
            if _matches(flow, trigger, execution, now, windows, changed, kv):
                created.append(_execution(flow, trigger, execution, now, kv))
    return created, changed


def _matches(
    flow: Flow,
    trigger: FlowTrigger,
    ended: Execution,
    now: datetime,
    windows: Windows,
    changed: set[str],
    kv: KVSnapshot | None = None,
) -> bool:
    if ended.namespace == flow.namespace and ended.flow_id == flow.id:
        return False  # a flow never triggers itself
    if (ended.tenant_id or "main") != (flow.tenant_id or "main"):
        return False  # tenants never see each other's executions
    uid = f"{flow.tenant_id or 'main'}/{flow.namespace}/{flow.id}/{trigger.id}"
    ctx = ConditionContext(
        namespace=flow.namespace,
        flow_id=flow.id,
        execution=ended,
        variables={"trigger": _trigger_variables(ended)},
        functions=_functions(now, uid, ended, kv, flow.namespace),
    )
    for condition in trigger.conditions:
        if isinstance(condition, MultipleCondition):
            names = {name for name, sub in condition.conditions.items() if _test(sub, ctx)}
            key = f"{uid}/{condition.id or 'multiple'}"
            window = _multiple_window(condition)
            met = _record(windows, key, window, now, names, set(condition.conditions))
            changed.add(key)
            if not met:
                return False
            if condition.reset_on_success:
                windows.windows[key].matched.clear()
        elif not _test(condition, ctx):
            return False
    pre = trigger.preconditions
    if pre is not None and (pre.flows or pre.where):
        key = f"{uid}/preconditions"
        wanted = {f"flow:{i}" for i in range(len(pre.flows))} | {f"where:{w.id}" for w in pre.where}
        names = _preconditions_met(pre, ended, ctx)
        met = _record(windows, key, pre.time_window or TimeWindow(), now, names, wanted)
        changed.add(key)
        if not met:
            return False
        if pre.reset_on_success:
            windows.windows[key].matched.clear()
    return True


def _functions(
    now: datetime,
    uid: str,
    ended: Execution,
    kv: KVSnapshot | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """``now()`` is the step's, ``uuid()``/``randomInt()`` are seeded by the trigger and the
    watched execution's state change: the same change always renders the same. ``kv()``
    reads the snapshot (the trigger's flow namespace by default), when given."""
    seed = (uid, ended.id, ended.state.current.value, len(ended.state.histories))
    functions = RenderContext(now, *seed).functions()
    if kv is not None:
        functions |= kv.functions(namespace or ended.namespace)
    return functions


def _test(condition: Any, ctx: ConditionContext) -> bool:
    try:
        return bool(condition.test(ctx))
    except (LannerError, NotImplementedError):
        return False


def _preconditions_met(pre: Preconditions, ended: Execution, ctx: ConditionContext) -> set[str]:
    names: set[str] = set()
    labels = ended.label_map()
    for index, wanted in enumerate(pre.flows):
        if wanted.namespace != ended.namespace or wanted.flow_id != ended.flow_id:
            continue
        if wanted.states and ended.state.current.value not in wanted.states:
            continue
        if any(labels.get(k) != v for k, v in wanted.labels.items()):
            continue
        names.add(f"flow:{index}")
    for where in pre.where:
        results = (_filter(f, ended, ctx) for f in where.filters)
        if all(results) if where.operand == "AND" else any(results):
            names.add(f"where:{where.id}")
    return names


def _filter(item: WhereFilter, ended: Execution, ctx: ConditionContext) -> bool:
    value: Any
    if item.field == "FLOW_ID":
        value = ended.flow_id
    elif item.field == "NAMESPACE":
        value = ended.namespace
    elif item.field == "STATE":
        value = ended.state.current.value
    else:  # EXPRESSION: the filter's value is the expression, tested true or false
        try:
            value = render_condition(str(item.value), ctx.variables, functions=ctx.functions)
        except LannerError:
            return False
        return value if item.type != "IS_FALSE" else not value
    wanted = item.value
    kind = item.type
    if kind == "EQUAL_TO":
        return bool(value == wanted)
    if kind == "NOT_EQUAL_TO":
        return bool(value != wanted)
    if kind == "IS_NULL":
        return value is None
    if kind == "IS_NOT_NULL":
        return value is not None
    if kind == "STARTS_WITH":
        return str(value).startswith(str(wanted))
    if kind == "ENDS_WITH":
        return str(value).endswith(str(wanted))
    if kind == "CONTAINS":
        return str(wanted) in str(value)
    if kind == "REGEX":
        try:  # RE2, or a helper process with a deadline (common.bounded): the executor's thread
            return bounded.fullmatch(str(wanted), str(value))
        except (re.error, bounded.LimitExceeded):
            return False
    values = [str(v) for v in (item.values or ([wanted] if wanted is not None else []))]
    if kind == "IN":
        return str(value) in values
    if kind == "NOT_IN":
        return str(value) not in values
    return False  # IS_TRUE / IS_FALSE only apply to EXPRESSION


def _multiple_window(condition: MultipleCondition) -> TimeWindow:
    if condition.time_window:
        try:
            return TimeWindow.model_validate(condition.time_window)
        except ValidationError:
            pass  # refused when the flow was parsed; never reached
    return TimeWindow(window=condition.window, windowAdvance=condition.window_advance)


def _bounds(window: TimeWindow, now: datetime) -> tuple[datetime, bool] | None:
    """Start of the window ``now`` is in, and whether it slides; None: ``now`` is outside
    every window (before a daily start, after a daily end or deadline)."""
    day = datetime.combine(now.astimezone(UTC).date(), time(0), tzinfo=UTC)
    if window.type == "DAILY_TIME_WINDOW":
        start = day + _time_of_day(window.start_time, timedelta(0))
        end = day + _time_of_day(window.end_time, timedelta(days=1))
        return (start, False) if start <= now <= end else None
    if window.type == "DAILY_TIME_DEADLINE":
        deadline = day + _time_of_day(window.deadline, timedelta(days=1))
        return (day, False) if now <= deadline else None
    size = parse_duration(window.window) or _DEFAULT_WINDOW
    if size <= timedelta(0):
        size = _DEFAULT_WINDOW
    if window.type == "SLIDING_WINDOW":
        return now - size, True
    origin = _EPOCH + (parse_duration(window.window_advance) or timedelta(0))
    return origin + ((now - origin) // size) * size, False


def _time_of_day(value: str | None, default: timedelta) -> timedelta:
    if not value:
        return default
    parsed = time.fromisoformat(value)
    return timedelta(hours=parsed.hour, minutes=parsed.minute, seconds=parsed.second)


def _record(
    windows: Windows,
    key: str,
    window: TimeWindow,
    now: datetime,
    names: set[str],
    wanted: set[str],
) -> bool:
    """Remember ``names`` as matched at ``now``; True once every ``wanted`` name matched in
    the current window."""
    bounds = _bounds(window, now)
    entry = windows.windows.get(key) or Window()
    if bounds is None:
        windows.windows[key] = entry
        return False
    start, sliding = bounds
    if sliding:
        entry.matched = {n: at for n, at in entry.matched.items() if at > start}
        entry.start = None
    elif entry.start != start:
        entry = Window(start=start)
    for name in names:
        entry.matched[name] = now
    windows.windows[key] = entry
    return bool(wanted) and wanted <= set(entry.matched)


def _trigger_variables(ended: Execution) -> dict[str, Any]:
    return {
        "executionId": ended.id,
        "namespace": ended.namespace,
        "flowId": ended.flow_id,
        "flowRevision": ended.flow_revision,
        "state": ended.state.current.value,
        "outputs": ended.outputs or {},
        "labels": ended.label_map(),
    }


def _execution(
    flow: Flow,
    trigger: FlowTrigger,
    ended: Execution,
    now: datetime,
    kv: KVSnapshot | None = None,
) -> Execution:
    variables = _trigger_variables(ended)
    inputs: dict[str, Any] | None = None
    if trigger.inputs:
        context = {
            "trigger": variables,
            "flow": {"id": flow.id, "namespace": flow.namespace},
            "outputs": outputs_map(ended),
        }
        try:
            uid = f"{flow.namespace}/{flow.id}/{trigger.id}"
            functions = _functions(now, uid, ended, kv, flow.namespace)
            inputs = render_object(trigger.inputs, context, functions=functions)
        except LannerError:
            inputs = dict(trigger.inputs)
    parts = [flow.namespace, flow.id, trigger.id, ended.id]
    if not ended.state.current.terminal:
        # one execution per matching state change: RUNNING can come back after PAUSED
        parts += [ended.state.current.value, str(len(ended.state.histories))]
    execution_id = derived_id("flow-trigger", *parts)
    correlation = ended.label_map().get("system.correlationId", ended.id)
    labels = [Label(key=k, value=v) for k, v in flow.labels.items()]
    labels.append(Label(key="system.correlationId", value=correlation))
    execution = Execution(
        id=execution_id,
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision or 1,
        tenant_id=flow.tenant_id,
        inputs=inputs,
        labels=labels,
        trigger=ExecutionTrigger(id=trigger.id, type=FLOW_TRIGGER_TYPE, variables=variables),
    )
    execution.set_state(State.CREATED, now)
    return execution
