"""Sending a user's change of a trigger (enable, disable, unlock, backfill) to the scheduler.

The webserver and the ``Toggle`` task never write a trigger state: the scheduler owns them. They
send a ``TriggerRequest`` on the ``triggers`` topic under its own key, which the scheduler that
evaluates the trigger merges into the state at its next tick (``scheduler._requests`` describes
the protocol). ``expected_state`` is what the requester can answer meanwhile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from common.ids import new_id
from common.models.trigger import BackfillState, TriggerRequest, TriggerState
from common.queue.base import TRIGGERS, Queue


def new_request(
    tenant_id: str, namespace: str, flow_id: str, trigger_id: str, now: datetime, **changes: Any
) -> TriggerRequest:
    return TriggerRequest(
        id=new_id(),
        tenant_id=tenant_id,
        namespace=namespace,
        flow_id=flow_id,
        trigger_id=trigger_id,
        date=now,
        **changes,
    )


def send_request(queue: Queue, request: TriggerRequest) -> None:
    """Put ``request`` on the ``triggers`` topic for the scheduler that owns its trigger."""
    queue.emit(TRIGGERS, request.key, request.to_json())


def expected_state(state: TriggerState | None, request: TriggerRequest) -> TriggerState:
    """The state once the scheduler has applied ``request``, as far as the requester can tell:
    the user-controlled fields changed, the scheduler's own (next date of a re-enabled schedule,
    backfill progress) as last stored."""
    base = state or TriggerState(
        tenant_id=request.tenant_id,
        namespace=request.namespace,
        flow_id=request.flow_id,
        trigger_id=request.trigger_id,
    )
    changes: dict[str, Any] = {"date": request.date}
    if request.disabled is not None:
        changes["disabled"] = request.disabled
    if request.unlock:
        changes["evaluate_running_date"] = None
        changes["running_execution_id"] = None
    action = request.backfill_action
    if action == "CREATE" and request.backfill is not None:
        asked = request.backfill
        changes["backfill"] = BackfillState(
            start=asked.start,
            end=asked.end or request.date,
            current_date=asked.start,
            inputs=asked.inputs,
            labels=asked.labels,
            paused=asked.paused,
        )
    elif action in ("PAUSE", "UNPAUSE") and base.backfill is not None:
        changes["backfill"] = base.backfill.model_copy(update={"paused": action == "PAUSE"})
    elif action == "DELETE":
        changes["backfill"] = None
    return base.model_copy(update=changes)
