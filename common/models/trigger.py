"""Trigger state: what the scheduler remembers about one trigger of one flow.

Published on the ``triggers`` topic (key: ``TriggerState.uid``) for the indexer and the UI, and
stored by the scheduler so a restart or a fail-over resumes where the last tick left off. The
scheduler is the only writer of states; a user's change (enable, disable, unlock, backfill)
travels on the same topic as a ``TriggerRequest`` under a ``request:`` key, which the scheduler
merges into the state it owns (``scheduler._requests``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from .base import Message, WireModel


class BackfillState(WireModel):
    """Progress of a backfill: dates from ``start`` to ``end`` replayed one per tick.

    ``current_date`` is the next date to replay; the backfill is over once it passes ``end`` (or,
    without ``end``, reaches the first date the regular schedule fires itself).
    """

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime | None = None
    current_date: datetime | None = None
    inputs: dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    paused: bool = False


class TriggerState(Message):
    """The stored state of one trigger (Kestra's ``Trigger``)."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str = "main"
    namespace: str
    flow_id: str
    trigger_id: str
    # next date the regular schedule fires (UTC); None until first evaluated
    next_execution_date: datetime | None = None
    last_execution_id: str | None = None
    # the scheduled date (not the wall-clock time) of the last execution created
    last_execution_date: datetime | None = None
    backfill: BackfillState | None = None
    # set through the API (trigger toggle); the flow's own `disabled` is checked separately
    disabled: bool = False
    # polling triggers only: when the evaluation sent to a worker started (evaluation lock);
    # kept while the execution it started runs (``running_execution_id``), cleared by the
    # worker's empty answer, the executor's notice that the execution ended, an unlock request,
    # or the scheduler's lock timeout (an evaluation never answered: its worker died)
    evaluate_running_date: datetime | None = None
    # polling triggers only: the execution the locked evaluation started, still running
    running_execution_id: str | None = None
    # ids of the last user requests merged into this state (bounded): a request read again
    # after a crash or a hand-over is not applied twice
    applied_requests: list[str] = Field(default_factory=list)
    # wall-clock time of the last change of this state
    date: datetime | None = None
    flow_revision: int | None = None
    # cron, timezone and withSeconds as evaluated: a change recomputes `next_execution_date`
    fingerprint: str | None = Field(default=None)

    @property
    def uid(self) -> str:
        return trigger_uid(self.tenant_id, self.namespace, self.flow_id, self.trigger_id)


def trigger_uid(tenant_id: str, namespace: str, flow_id: str, trigger_id: str) -> str:
    """Key of a trigger on the ``triggers`` topic and in state stores."""
    return f"{tenant_id}/{namespace}/{flow_id}/{trigger_id}"


# ---------------------------------------------------------------- user changes

#: keys of the request records on the ``triggers`` topic start with this (never a trigger uid,
#: whose first part is a tenant id)
REQUEST_KEY_PREFIX = "request:"


class BackfillRequest(WireModel):
    """A backfill to create (Kestra's ``Trigger.backfill`` in ``PUT /triggers``)."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime | None = None
    inputs: dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    paused: bool = False


class PollingEvaluation(WireModel):
    """A worker's answer to one evaluation of a polling trigger (Kestra's
    ``WorkerTriggerResult``): the lock it answers (``date``, the state's
    ``evaluateRunningDate``), and the trigger variables of the execution to start, or None."""

    model_config = ConfigDict(frozen=True)

    date: datetime
    variables: dict[str, Any] | None = None
    error: str | None = None
    worker_id: str | None = None


class WorkerTrigger(Message):
    """A polling trigger to evaluate, sent by the scheduler on ``worker-triggers[.<group>]``."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str = "main"
    namespace: str
    flow_id: str
    flow_revision: int | None = None
    trigger: dict[str, Any]
    # the evaluation lock: the answer names it, a stale answer is dropped
    date: datetime
    # the evaluation lock expires at this date: a worker gives up (reports nothing) past it
    deadline: datetime | None = None
    # ``flow``, ``labels``... for rendering the trigger's properties
    variables: dict[str, Any] = Field(default_factory=dict)

    @property
    def uid(self) -> str:
        return trigger_uid(self.tenant_id, self.namespace, self.flow_id, str(self.trigger["id"]))


class TriggerRequest(Message):
    """A user's change of a trigger's state, applied by the scheduler that owns the trigger.

    The API and the ``Toggle`` task never write a ``TriggerState``: they put one of these on the
    ``triggers`` topic under ``key`` (``scheduler._requests`` tells the whole protocol). Only the
    fields the user controls travel: ``disabled``, a backfill change, ``unlock``; each None field
    leaves the state as it is.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    tenant_id: str = "main"
    namespace: str
    flow_id: str
    trigger_id: str
    # wall-clock time of the request (a request nobody can apply is dropped after a while)
    date: datetime
    disabled: bool | None = None
    # CREATE (with `backfill`), PAUSE, UNPAUSE or DELETE
    backfill_action: Literal["CREATE", "PAUSE", "UNPAUSE", "DELETE"] | None = None
    backfill: BackfillRequest | None = None
    unlock: bool = False
    # polling triggers: a worker's answer to the evaluation locked at ``evaluation.date``
    evaluation: PollingEvaluation | None = None
    # polling triggers: the executor's notice that this execution (started by the trigger) ended
    execution_ended: str | None = None
    # who asked: "api", or "task:<execution id>" for the Toggle task (for the logs)
    source: str = "api"

    @property
    def uid(self) -> str:
        return trigger_uid(self.tenant_id, self.namespace, self.flow_id, self.trigger_id)

    @property
    def key(self) -> str:
        return request_key(self.uid, self.id)


def request_key(uid: str, request_id: str) -> str:
    return f"{REQUEST_KEY_PREFIX}{request_id}:{uid}"


def is_request_key(key: str | None) -> bool:
    return key is not None and key.startswith(REQUEST_KEY_PREFIX)
