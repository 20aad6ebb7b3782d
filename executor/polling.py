"""Polling triggers (pure): tell the scheduler when an execution a polling trigger started ends.

The scheduler keeps a polling trigger locked while the execution it started runs
(``scheduler.polling``); the execution's ``trigger`` names the trigger, and when the execution
reaches a terminal state this sends the unlock: a ``TriggerRequest`` with ``executionEnded`` on
``triggers``, applied by the scheduler that owns the trigger. Sent again (a redelivered input),
it changes nothing: the scheduler unlocks only the lock of that execution.
"""

from __future__ import annotations

from datetime import datetime

from common.ids import derived_id
from common.models.execution import Execution
from common.models.state import State
from common.models.trigger import TriggerRequest
from common.plugins.base import PollingTrigger
from common.plugins.registry import registry
from common.queue.base import TRIGGERS, Outgoing


def is_polling(type_name: str) -> bool:
    cls = registry().get(type_name)
    return cls is not None and issubclass(cls, PollingTrigger)


def ended_records(execution: Execution, previous: State | None, now: datetime) -> list[Outgoing]:
    """The unlock request when ``execution``, started by a polling trigger, has just ended."""
    trigger = execution.trigger
    current = execution.state.current
    if trigger is None or not current.terminal or (previous is not None and previous.terminal):
        return []
    if not is_polling(trigger.type):
        return []
    request = TriggerRequest(
        id=derived_id("execution-ended", execution.id, current.value),
        tenant_id=execution.tenant_id or "main",
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        trigger_id=trigger.id,
        date=now,
        execution_ended=execution.id,
        source=f"executor:{execution.id}",
    )
    return [(TRIGGERS, request.key, request.to_json())]
