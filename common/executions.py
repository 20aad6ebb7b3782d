"""Creating a new execution of a flow: used by the API, the webhook and the scheduler."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from common.models.execution import (
    Execution,
    ExecutionMetadata,
    ExecutionTrigger,
    Label,
    StateEntry,
    StateInfo,
)
from common.models.flow import Flow
from common.models.state import State

CORRELATION_LABEL = "system.correlationId"


def merge_labels(
    flow_labels: Mapping[str, str], labels: Mapping[str, str] | list[Label] | None
) -> list[Label]:
    """Flow labels, overridden by the given ones (same key), in first-seen order."""
    merged: dict[str, str] = dict(flow_labels)
    if isinstance(labels, list):
        for label in labels:
            merged[label.key] = label.value
    elif labels:
        merged.update(labels)
    return [Label(key=k, value=v) for k, v in merged.items()]


SYSTEM_PREFIX = "system."


def system_label_refused(existing: list[Label], labels: list[Label]) -> Label | None:
    """The first given system label that differs from the execution's own (Kestra refuses
    it: "System labels can only be set by Kestra itself")."""
    own = {(label.key, label.value) for label in existing if label.key.startswith(SYSTEM_PREFIX)}
    for label in labels:
        if label.key.startswith(SYSTEM_PREFIX) and (label.key, label.value) not in own:
            return label
    return None


def set_labels(existing: list[Label], labels: list[Label]) -> list[Label]:
    """Kestra's ``ExecutionController.setLabels``: given labels win over existing ones of the
    same key, existing ones stay; a label with an empty key and value is dropped. System labels
    are never changed here (the caller refused those that differ)."""
    merged: dict[str, str] = {}
    for label in labels:
        if not label.key.startswith(SYSTEM_PREFIX):
            merged[label.key] = label.value
    for label in existing:
        if label.key.startswith(SYSTEM_PREFIX):
            merged[label.key] = label.value
        else:
            merged.setdefault(label.key, label.value)
    return [Label(key=k, value=v) for k, v in merged.items() if k or v]


def new_execution(
    flow: Flow,
    inputs: Mapping[str, Any] | None,
    labels: Mapping[str, str] | list[Label] | None,
    *,
    execution_id: str,
    now: datetime,
    trigger: ExecutionTrigger | None = None,
    schedule_date: datetime | None = None,
    tenant_id: str | None = None,
) -> Execution:
    """A CREATED execution of ``flow``, ready to be sent to the executor.

    Labels are the flow's labels plus ``labels`` (which win on the same key), and a
    ``system.correlationId`` label equal to the execution id unless one is given.
    """
    merged = merge_labels(flow.labels, labels)
    if not any(label.key == CORRELATION_LABEL for label in merged):
        merged.append(Label(key=CORRELATION_LABEL, value=execution_id))
    return Execution(
        id=execution_id,
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision or 1,
        tenant_id=tenant_id or flow.tenant_id,
        inputs=dict(inputs) if inputs is not None else {},
        labels=merged,
        trigger=trigger,
        schedule_date=schedule_date,
        state=StateInfo(
            current=State.CREATED, histories=[StateEntry(state=State.CREATED, date=now)]
        ),
        metadata=ExecutionMetadata(attempt_number=1, original_created_date=now),
    )
