"""Saving a flow: store a new revision in the repository and announce it on the ``flows`` topic,
so the executor and the scheduler pick it up. The API and ``lanner server local --flows-dir`` both
deploy through here."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from common.backends import Backends
from common.errors import NotFoundError
from common.models.flow import Flow
from common.queue.base import FLOWS
from common.repository.base import FlowRecord


def flow_event(record: FlowRecord, deleted: bool = False) -> bytes:
    return json.dumps(
        {
            "source": record.source,
            "revision": record.revision,
            "tenant": record.tenant_id,
            "namespace": record.namespace,
            "id": record.id,
            "deleted": deleted,
        }
    ).encode()


def flow_key(tenant: str, namespace: str, flow_id: str) -> str:
    return f"{tenant}/{namespace}/{flow_id}"


def save_flow(backends: Backends, tenant: str, flow: Flow, source: str) -> FlowRecord:
    repo = backends.repositories.flows
    previous = repo.get(tenant, flow.namespace, flow.id)
    repo.save(
        FlowRecord(
            tenant_id=tenant,
            namespace=flow.namespace,
            id=flow.id,
            revision=(previous.revision + 1) if previous else 1,
            source=source,
            updated=datetime.now(UTC),
            disabled=flow.disabled,
        )
    )
    saved = repo.get(tenant, flow.namespace, flow.id)
    if saved is None:  # pragma: no cover - the repository just stored it
        raise NotFoundError(f"flow {flow.namespace}.{flow.id} vanished while being saved")
    if previous is None or previous.revision != saved.revision:
        backends.queue.emit(
            FLOWS, flow_key(tenant, flow.namespace, flow.id), flow_event(saved, deleted=False)
        )
        if backends.flows is not None:
            # executions this process creates next run this revision (read from the topic)
            backends.flows.sync()
    return saved
