"""Trigger state: what the scheduler remembers about one trigger of one flow.

Published on the ``triggers`` topic (key: ``TriggerState.uid``) for the indexer and the UI, and
stored by the scheduler so a restart or a fail-over resumes where the last tick left off.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    # polling triggers only: when the evaluation sent to a worker started (evaluation lock)
    evaluate_running_date: datetime | None = None
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
