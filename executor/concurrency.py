"""Flow concurrency slots (pure, keyed by flow).

A flow with ``concurrency: {limit, behavior}`` has one small state, :class:`FlowSlots`: the
executions holding a slot and the executions waiting for one, oldest first. Every shell runs
the same three steps around ``core.step`` for an execution of such a flow:

1. ``running_count(slots, execution_id)``: the other slot holders, given to ``step``;
2. inside ``step``, ``begin()`` (a new execution, a scheduled start, a ``Dequeue``) asks
   :func:`admit` whether the execution runs, waits, or is cancelled / failed;
3. ``observe(slots, concurrency, execution)`` with the execution as ``step`` left it: the slots
   follow its state, and when a slot is free the oldest waiting execution takes it at once
   (it holds the slot from then on) and gets a ``Dequeue`` input.

Taking the slot when the ``Dequeue`` is emitted, not when it is applied, is what keeps the
limit: an execution created in the same batch sees the slot taken, and two ends in one batch
release two different executions. The ``Dequeue`` still goes through ``begin()``, which checks
the limit again and sets the SLA wake-ups.

The state is serialisable: the embedded shell keeps it in a SQLite table, the Kafka flow agent
in a table keyed by ``flow_key``.
"""

from __future__ import annotations

from pydantic import Field

from common.models.base import WireModel
from common.models.execution import Execution
from common.models.flow import Concurrency
from common.models.messages import Dequeue
from common.models.state import State

# states that wait for a start, neither holding nor waiting for a slot
_NOT_STARTED = (State.CREATED,)


class FlowSlots(WireModel):
    """Concurrency state of one flow."""

    running: list[str] = Field(default_factory=list)
    queued: list[str] = Field(default_factory=list)
    # Dequeue inputs emitted so far: their ids derive from it, so each one is distinct
    released: int = 0


def flow_key(tenant: str | None, namespace: str, flow_id: str) -> str:
    return f"{tenant or 'main'}/{namespace}/{flow_id}"


def execution_flow_key(execution: Execution) -> str:
    return flow_key(execution.tenant_id, execution.namespace, execution.flow_id)


def running_count(slots: FlowSlots, execution_id: str) -> int:
    """Slots held by executions other than ``execution_id``."""
    return sum(1 for held in slots.running if held != execution_id)


def admit(concurrency: Concurrency | None, running: int) -> State:
    """The state an execution starts in when ``running`` other executions hold a slot:
    RUNNING, or by the flow's behavior QUEUED, CANCELLED or FAILED."""
    if concurrency is None or running < concurrency.limit:
        return State.RUNNING
    return {"QUEUE": State.QUEUED, "CANCEL": State.CANCELLED}.get(
        concurrency.behavior, State.FAILED
    )


def observe(
    slots: FlowSlots, concurrency: Concurrency | None, execution: Execution
) -> list[Dequeue]:
    """Make ``slots`` follow ``execution``'s state; returns the ``Dequeue`` inputs of the
    waiting executions that take a free slot (they hold it from now on)."""
    execution_id = execution.id
    current = execution.state.current
    if current == State.QUEUED:
        _discard(slots.running, execution_id)
        if execution_id not in slots.queued:
            slots.queued.append(execution_id)
    elif current.terminal:
        _discard(slots.running, execution_id)
        _discard(slots.queued, execution_id)
    elif current not in _NOT_STARTED:
        _discard(slots.queued, execution_id)
        if execution_id not in slots.running:
            slots.running.append(execution_id)
    dequeues: list[Dequeue] = []
    limit = concurrency.limit if concurrency is not None else None
    while slots.queued and (limit is None or len(slots.running) < limit):
        chosen = slots.queued.pop(0)
        slots.running.append(chosen)
        slots.released += 1
        dequeues.append(
            Dequeue(
                id=f"dequeue:{chosen}:{slots.released}",
                execution_id=chosen,
                running_count=len(slots.running) - 1,
            )
        )
    return dequeues


def observe_report(
    slots: FlowSlots, concurrency: Concurrency | None, execution: Execution
) -> list[Dequeue]:
    """:func:`observe` for a slot keeper that hears of states after the fact (the Kafka flow
    agent): a QUEUED report of an execution the keeper has since given a slot was sent before
    the execution applied that grant, so it is old news. Taken as news, it would put the
    execution back in the queue while its ``Dequeue`` is in flight, and the same slot would go
    to the next waiting execution as well."""
    if execution.state.current == State.QUEUED and execution.id in slots.running:
        return []
    return observe(slots, concurrency, execution)


def request_admission(
    slots: FlowSlots, concurrency: Concurrency | None, execution_id: str
) -> Dequeue:
    """The answer of a slot keeper (the Kafka flow agent) to an execution that asks for a slot
    (``StepResult.admission_requested``): the slot is taken, or the place in the queue, now, and
    the ``Dequeue`` tells the core how many others hold one, so it decides as :func:`admit` did."""
    running = running_count(slots, execution_id)
    admitted = admit(concurrency, running)
    if admitted == State.RUNNING and execution_id not in slots.running:
        slots.running.append(execution_id)
    elif admitted == State.QUEUED and execution_id not in slots.queued:
        slots.queued.append(execution_id)
    return Dequeue(id=f"admit:{execution_id}", execution_id=execution_id, running_count=running)


def _discard(items: list[str], item: str) -> None:
    if item in items:
        items.remove(item)
