"""User changes of trigger states (enable, disable, unlock, backfill), applied by the scheduler.

The scheduler is the single writer of trigger states: it evaluates a trigger and stores the new
state in the same commit as the executions it emits, so nobody else may write a state (a write
from the API between the scheduler's read and its write would be lost, or would bring back a
date the scheduler had already fired). A user's change therefore travels as a request:

1. The webserver (``/api/v1/{tenant}/triggers...``) or the ``Toggle`` task on a worker checks
   what it can and puts a ``TriggerRequest`` on the ``triggers`` topic under the key
   ``request:<request id>:<trigger uid>`` (``common.models.trigger.request_key``), never under
   the trigger's own key, so compaction never lets a request replace a state.
2. Every scheduler reads those records (``RequestInbox``): a value adds a pending request, a
   tombstone removes it. At the start of each tick, before evaluating, it applies the pending
   requests of the flows it evaluates (on Kafka: the flows of its partitions, so one replica
   applies each request) with ``apply_request``, which merges only the user-controlled fields
   (``disabled``, ``backfill``, the evaluation lock) into the state it owns.
3. The new state is written as any other (SQLite: ``scheduler_triggers`` and the topic, in the
   tick's transaction; Kafka: the ``triggers`` topic), followed by a tombstone of the request's
   key, so the request is gone from the topic once compacted.

A request read twice (a crash between the state write and the tombstone, or a hand-over) is
applied once: the state keeps the ids of the last requests merged into it. On Kafka each replica
reads the whole topic with a group of its own and never commits, so after a hand-over the new
owner already holds the requests still pending for its new flows. A request that names a flow
or trigger the scheduler does not know is dropped with a log (embedded: at once; Kafka: after
``REQUEST_TTL``, since a replica may learn of a new flow after the webserver did).

Re-enabling a Schedule trigger sets its next date after the current time, as Kestra does: the
dates that passed while it was disabled never fire. A new backfill without ``end`` ends at the
time it was asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from common.ids import new_id
from common.models.trigger import (
    BackfillState,
    TriggerRequest,
    TriggerState,
    is_request_key,
)
from common.plugins.base import Trigger
from common.plugins.core.triggers import Schedule
from common.queue.base import TRIGGERS, Queue, Record, Subscription

from .schedule import next_date

log = logging.getLogger("lanner.scheduler")

#: the group the embedded scheduler reads requests with (committed after each tick)
GROUP = "scheduler-requests"
#: how many request ids a state remembers
APPLIED_KEPT = 20
#: how long a request for an unknown flow or trigger waits before it is dropped (Kafka)
REQUEST_TTL = timedelta(minutes=5)


def apply_request(
    state: TriggerState | None,
    request: TriggerRequest,
    trigger: Trigger,
    now: datetime,
) -> TriggerState | None:
    """The state after ``request``, or None when it changes nothing (already applied)."""
    base = state or TriggerState(
        tenant_id=request.tenant_id,
        namespace=request.namespace,
        flow_id=request.flow_id,
        trigger_id=request.trigger_id,
    )
    if request.id in base.applied_requests:
        return None
    changes: dict[str, Any] = {}
    if request.disabled is not None and request.disabled != base.disabled:
        changes["disabled"] = request.disabled
        if not request.disabled and isinstance(trigger, Schedule):
            # the dates missed while disabled never fire: go on from now
            changes["next_execution_date"] = next_date(trigger, now)
    if request.unlock:
        changes["evaluate_running_date"] = None
        changes["running_execution_id"] = None
    action = request.backfill_action
    if action == "CREATE" and request.backfill is not None and isinstance(trigger, Schedule):
        asked = request.backfill
        changes["backfill"] = BackfillState(
            start=asked.start,
            end=asked.end or request.date,
            current_date=next_date(trigger, asked.start - timedelta(microseconds=1)),
            inputs=asked.inputs,
            labels=asked.labels,
            paused=asked.paused,
        )
    elif action in ("PAUSE", "UNPAUSE") and base.backfill is not None:
        changes["backfill"] = base.backfill.model_copy(update={"paused": action == "PAUSE"})
    elif action == "DELETE":
        changes["backfill"] = None
    applied = [*base.applied_requests, request.id][-APPLIED_KEPT:]
    return base.model_copy(update={**changes, "applied_requests": applied, "date": now})


@dataclass
class _Pending:
    request: TriggerRequest
    record: Record


class RequestInbox:
    """The requests on the ``triggers`` topic that no scheduler has applied yet.

    Args:
        queue: the scheduler's queue.
        shared: True on Kafka: every replica reads every partition from the start with a group
            of its own and never commits; False (embedded): one committed group.
    """

    def __init__(self, queue: Queue, *, shared: bool) -> None:
        self.shared = shared
        group = f"{GROUP}.{new_id()}" if shared else GROUP
        self._subscription: Subscription = queue.subscribe([TRIGGERS], group)
        self.pending: dict[str, _Pending] = {}
        self._read: list[Record] = []

    def poll(self) -> None:
        while True:
            batch = self._subscription.poll(max_records=1000, timeout=0)
            if not batch:
                return
            self._read.extend(batch)
            for record in batch:
                if not is_request_key(record.key):
                    continue  # a trigger state
                assert record.key is not None
                if record.value is None:
                    self.pending.pop(record.key, None)
                    continue
                try:
                    request = TriggerRequest.model_validate_json(record.value)
                except ValueError:
                    log.warning("ignoring an unreadable trigger request %s", record.key)
                    continue
                self.pending[record.key] = _Pending(request, record)

    def requests(self) -> list[TriggerRequest]:
        """Pending requests in the order they were read."""
        return [p.request for p in self.pending.values()]

    def done(self, keys: Sequence[str]) -> None:
        """These requests are applied or dropped and their tombstones are stored."""
        for key in keys:
            self.pending.pop(key, None)
        if not self.shared and self._read:
            self._subscription.commit(self._read)
        self._read = []

    def close(self) -> None:
        self._subscription.close()
