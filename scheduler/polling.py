"""Polling triggers (pure): when to send one to a worker, and what its answer does.

A polling trigger (``core.http.Trigger``, ``core.storage.FileTrigger``: a ``PollingTrigger``) is
evaluated on a worker every ``interval``, never concurrently with itself, and never while the
execution it started still runs. The scheduler that owns the trigger holds the lock in the
trigger's state (``evaluateRunningDate``, Kestra's field of the same name):

1. ``due``: a trigger not locked whose ``nextExecutionDate`` has come is locked at ``now`` and a
   ``WorkerTrigger`` (with that date and the lock's ``deadline``) goes to
   ``worker-triggers[.<workerGroup.key>]``.
2. The worker evaluates it and answers with a ``TriggerRequest`` whose ``evaluation`` names the
   lock's date (``worker._triggers``); ``on_evaluation`` applies it: nothing to start unlocks
   the trigger; an execution to start is emitted (its id derives from the trigger and the
   lock's date, so a fail-over that applies the answer twice creates it once) and the lock
   stays, with ``runningExecutionId``. An answer for another date (stale) changes nothing.
3. When that execution ends, the executor sends a request with ``executionEnded``
   (``executor.polling``); ``on_execution_ended`` unlocks the trigger.

A worker that dies while it evaluates never answers: a lock with no execution older than the
lock timeout (``polling_trigger_lock_timeout_seconds``) expires at the next tick and the trigger
is evaluated again. The worker gives up on an evaluation past the deadline (an HTTP request
never waits beyond it, an answer past it is not sent), so an expired lock never has a second
evaluation running beside it. A lock held by a running execution has no timeout: it ends with
the execution (or through the API's unlock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from common.errors import InputValidationError
from common.executions import new_execution
from common.flow.inputs import validate_inputs
from common.ids import derived_id
from common.models.execution import ExecutionTrigger
from common.models.flow import Flow
from common.models.messages import LogEntry, NewExecution
from common.models.trigger import PollingEvaluation, TriggerState, WorkerTrigger
from common.plugins.base import PollingTrigger, parse_duration


@dataclass
class PollingResult:
    state: TriggerState | None = None  # None: unchanged
    send: WorkerTrigger | None = None
    executions: list[NewExecution] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)


def interval_of(trigger: PollingTrigger) -> timedelta:
    return parse_duration(trigger.interval) or timedelta(seconds=60)


def polling_execution_id(uid: str, date: datetime) -> str:
    return derived_id(uid, "poll", date.isoformat())


def _log(
    flow: Flow, tenant: str, trigger_id: str, now: datetime, level: str, text: str
) -> LogEntry:
    return LogEntry(
        tenant_id=tenant,
        namespace=flow.namespace,
        flow_id=flow.id,
        trigger_id=trigger_id,
        timestamp=now,
        level=level,  # type: ignore[arg-type]
        thread="scheduler",
        message=text,
    )


def flow_variables(flow: Flow, tenant: str) -> dict[str, Any]:
    return {
        "flow": {
            "id": flow.id,
            "namespace": flow.namespace,
            "revision": flow.revision,
            "tenantId": tenant,
        },
        "labels": dict(flow.labels),
    }


def due(
    flow: Flow,
    trigger: PollingTrigger,
    state: TriggerState | None,
    now: datetime,
    *,
    tenant: str,
    lock_timeout: timedelta,
    orphaned: bool = False,
) -> PollingResult:
    """Lock and send the trigger if its evaluation is due at ``now``. ``orphaned``: an
    evaluation lock is known to have lost its worker (the embedded server restarted: its worker
    died with it), so it expires now rather than after ``lock_timeout``."""
    result = PollingResult()
    base = state or TriggerState(
        tenant_id=tenant, namespace=flow.namespace, flow_id=flow.id, trigger_id=trigger.id
    )
    if base.evaluate_running_date is not None:
        running = base.running_execution_id is not None
        if running or (not orphaned and now - base.evaluate_running_date <= lock_timeout):
            return result  # evaluating, or its execution runs
        result.logs.append(
            _log(
                flow,
                tenant,
                trigger.id,
                now,
                "WARN",
                f"No worker answered the evaluation of {base.evaluate_running_date.isoformat()} "
                + ("before a restart" if orphaned else f"within {lock_timeout}")
                + ": the lock expired, the trigger is evaluated again",
            )
        )
        base = base.model_copy(update={"evaluate_running_date": None, "date": now})
        result.state = base
    if flow.disabled or trigger.disabled or base.disabled:
        return result
    if base.next_execution_date is not None and now < base.next_execution_date:
        return result
    result.state = base.model_copy(
        update={"evaluate_running_date": now, "date": now, "flow_revision": flow.revision}
    )
    result.send = WorkerTrigger(
        tenant_id=tenant,
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision,
        trigger=trigger.model_dump(by_alias=True, exclude_none=True),
        date=now,
        deadline=now + lock_timeout,
        variables=flow_variables(flow, tenant),
    )
    return result


def on_evaluation(
    flow: Flow,
    trigger: PollingTrigger,
    state: TriggerState | None,
    answer: PollingEvaluation,
    now: datetime,
    *,
    tenant: str,
) -> PollingResult:
    """A worker's answer: start the execution it asks for, or unlock."""
    result = PollingResult()
    if state is None or state.evaluate_running_date is None:
        return result  # the lock expired (or was unlocked) meanwhile
    if state.evaluate_running_date != answer.date or state.running_execution_id is not None:
        return result  # the answer of an older lock, or applied already
    next_date = now + interval_of(trigger)
    if answer.error is not None:
        result.logs.append(
            _log(flow, tenant, trigger.id, now, "WARN", f"Evaluation failed: {answer.error}")
        )
    if answer.variables is None:
        result.state = state.model_copy(
            update={"evaluate_running_date": None, "next_execution_date": next_date, "date": now}
        )
        return result
    execution_id = polling_execution_id(state.uid, answer.date)
    raw_inputs: Mapping[str, Any] = getattr(trigger, "inputs", None) or {}
    check_later = False
    try:
        inputs: dict[str, Any] = validate_inputs(flow, dict(raw_inputs))
    except InputValidationError:
        inputs, check_later = dict(raw_inputs), True
    execution = new_execution(
        flow,
        inputs,
        None,
        execution_id=execution_id,
        now=now,
        trigger=ExecutionTrigger(id=trigger.id, type=trigger.type, variables=answer.variables),
        tenant_id=tenant,
    )
    result.executions.append(
        NewExecution(
            id=f"new:{execution_id}",
            execution_id=execution_id,
            execution=execution,
            validate_inputs=check_later,
        )
    )
    result.state = state.model_copy(
        update={
            "running_execution_id": execution_id,
            "last_execution_id": execution_id,
            "last_execution_date": answer.date,
            "next_execution_date": next_date,
            "date": now,
        }
    )
    return result


def on_execution_ended(
    state: TriggerState | None, execution_id: str, now: datetime
) -> TriggerState | None:
    """The execution the trigger started ended: unlock (None: it was not the lock's)."""
    if state is None or state.running_execution_id != execution_id:
        return None
    return state.model_copy(
        update={"evaluate_running_date": None, "running_execution_id": None, "date": now}
    )
