"""Flow triggers: which executions to start when an execution ends (pure).

A flow with a ``io.kestra.plugin.core.trigger.Flow`` trigger starts when another execution ends
and every condition of the trigger holds. ``MultipleCondition`` remembers, per trigger and per
time window, which of its named conditions already matched; that memory is passed in and
returned, so the caller stores it (a SQLite table, a Faust table).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from common.errors import LannerError
from common.ids import derived_id
from common.models.execution import Execution, ExecutionTrigger, Label
from common.models.flow import Flow
from common.models.state import State
from common.plugins.base import parse_duration
from common.plugins.core.conditions import ConditionContext, MultipleCondition
from common.plugins.core.triggers import FlowTrigger
from common.templating import render_object

from ._variables import outputs_map

FLOW_TRIGGER_TYPE = "io.kestra.plugin.core.trigger.Flow"

# trigger uid -> {"window_start": iso, "matched": [names]}
MultiState = dict[str, dict[str, Any]]


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


def _window_start(now: datetime, window: str) -> datetime:
    size = parse_duration(window)
    if size is None or size.total_seconds() <= 0:
        return now
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    slots = (now - epoch) // size
    return epoch + slots * size


def evaluate(
    flows: Iterable[Flow],
    ended: Execution,
    now: datetime,
    multi: MultiState,
) -> list[Execution]:
    """New executions to create because ``ended`` reached a terminal state."""
    if not ended.state.current.terminal or ended.state.current == State.RETRIED:
        return []
    created: list[Execution] = []
    for flow in flows:
        if flow.disabled:
            continue
        for trigger in flow.triggers:
            if not isinstance(trigger, FlowTrigger) or trigger.disabled:
                continue
            if _matches(flow, trigger, ended, now, multi):
                created.append(_execution(flow, trigger, ended, now))
    return created


def _matches(
    flow: Flow, trigger: FlowTrigger, ended: Execution, now: datetime, multi: MultiState
) -> bool:
    if ended.namespace == flow.namespace and ended.flow_id == flow.id:
        return False  # a flow never triggers itself
    if trigger.states and ended.state.current.value not in trigger.states:
        return False
    ctx = ConditionContext(
        namespace=flow.namespace,
        flow_id=flow.id,
        execution=ended,
        variables={"trigger": _trigger_variables(ended)},
    )
    uid = f"{flow.tenant_id or 'main'}/{flow.namespace}/{flow.id}/{trigger.id}"
    for condition in trigger.conditions:
        if isinstance(condition, MultipleCondition):
            if not _multiple(condition, ctx, now, multi, f"{uid}/{condition.id or 'multiple'}"):
                return False
        elif not condition.test(ctx):  # type: ignore[attr-defined]
            return False
    if trigger.preconditions is not None and trigger.preconditions.flows:
        return _preconditions(trigger, ended, now, multi, f"{uid}/preconditions")
    return True


def _multiple(
    condition: MultipleCondition,
    ctx: ConditionContext,
    now: datetime,
    multi: MultiState,
    key: str,
) -> bool:
    start = _window_start(now, condition.window).isoformat()
    entry = multi.get(key)
    if entry is None or entry.get("window_start") != start:
        entry = {"window_start": start, "matched": []}
    matched = set(entry["matched"])
    for name, sub in condition.conditions.items():
        try:
            if sub.test(ctx):  # type: ignore[attr-defined]
                matched.add(name)
        except (LannerError, NotImplementedError):
            continue
    done = matched >= set(condition.conditions)
    entry["matched"] = sorted(matched)
    if done and condition.reset_on_success:
        entry["matched"] = []
    multi[key] = entry
    return done


def _preconditions(
    trigger: FlowTrigger, ended: Execution, now: datetime, multi: MultiState, key: str
) -> bool:
    pre = trigger.preconditions
    assert pre is not None
    entry = multi.get(key) or {"window_start": now.isoformat(), "matched": []}
    matched = set(entry["matched"])
    for index, wanted in enumerate(pre.flows):
        if wanted.namespace != ended.namespace or wanted.flow_id != ended.flow_id:
            continue
        if wanted.states and ended.state.current.value not in wanted.states:
            continue
        labels = ended.label_map()
        if any(labels.get(k) != v for k, v in wanted.labels.items()):
            continue
        matched.add(str(index))
    done = len(matched) == len(pre.flows)
    entry["matched"] = [] if done and pre.reset_on_success else sorted(matched)
    multi[key] = entry
    return done


def _execution(flow: Flow, trigger: FlowTrigger, ended: Execution, now: datetime) -> Execution:
    variables = _trigger_variables(ended)
    inputs: dict[str, Any] | None = None
    if trigger.inputs:
        context = {
            "trigger": variables,
            "flow": {"id": flow.id, "namespace": flow.namespace},
            "outputs": outputs_map(ended),
        }
        try:
            inputs = render_object(trigger.inputs, context)
        except LannerError:
            inputs = dict(trigger.inputs)
    execution_id = derived_id("flow-trigger", flow.namespace, flow.id, trigger.id, ended.id)
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
