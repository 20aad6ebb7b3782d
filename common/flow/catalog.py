"""The flow catalog: which parsed flow revision an execution runs, and which flows carry a
given kind of trigger, over every tenant.

Flows are parsed once per revision and cached; a parsed flow carries its tenant and revision,
so whatever it creates (a triggered execution) lands in the right tenant. ``changed()`` drops
the cache when the ``flows`` topic announces a new revision or a deletion. The executor and the
test harness read flows through it; the scheduler and the webserver can, as it only needs a
``FlowRepository``.
"""

from __future__ import annotations

import logging
from typing import Protocol

from common.errors import LannerError
from common.models.execution import Execution
from common.models.flow import Flow
from common.repository.base import FlowRecord

from .parser import parse_flow

log = logging.getLogger("lanner.flows")
DEFAULT_TENANT = "main"


class FlowSource(Protocol):
    """What the catalog reads of a ``FlowRepository``."""

    def get(
        self, tenant_id: str, namespace: str, flow_id: str, revision: int | None = None
    ) -> FlowRecord | None: ...

    def find(
        self, tenant_id: str, namespace: str | None = None, q: str | None = None
    ) -> list[FlowRecord]: ...

    def tenants(self) -> list[str]: ...


class FlowCatalog:
    """Parsed flows read through a ``FlowRepository``; not thread-safe (one per shell)."""

    def __init__(self, repository: FlowSource) -> None:
        self.repository = repository
        self._revisions: dict[tuple[str, str, str, int | None], Flow | None] = {}
        self._with_trigger: dict[type, list[Flow]] = {}

    def changed(self) -> None:
        """A flow was saved or deleted: forget what was cached."""
        self._revisions.clear()
        self._with_trigger.clear()

    def get(
        self, tenant: str | None, namespace: str, flow_id: str, revision: int | None = None
    ) -> Flow | None:
        """The flow at ``revision`` (the latest when None, or when that revision is gone);
        None when the flow does not exist, is deleted or no longer parses."""
        tenant = tenant or DEFAULT_TENANT
        key = (tenant, namespace, flow_id, revision)
        if key not in self._revisions:
            record = self.repository.get(tenant, namespace, flow_id, revision)
            if record is None and revision is not None:
                record = self.repository.get(tenant, namespace, flow_id)
            self._revisions[key] = (
                self.parse(record) if record is not None and not record.deleted else None
            )
        return self._revisions[key]

    def of(self, execution: Execution) -> Flow | None:
        """The flow revision ``execution`` runs."""
        return self.get(
            execution.tenant_id,
            execution.namespace,
            execution.flow_id,
            execution.flow_revision or None,
        )

    def with_trigger(self, kind: type) -> list[Flow]:
        """The latest revision of every flow, in every tenant, with a trigger of type ``kind``."""
        if kind not in self._with_trigger:
            found: list[Flow] = []
            for tenant in self.repository.tenants() or [DEFAULT_TENANT]:
                for record in self.repository.find(tenant):
                    flow = self.parse(record)
                    if flow is not None and any(isinstance(t, kind) for t in flow.triggers):
                        found.append(flow)
            self._with_trigger[kind] = found
        return self._with_trigger[kind]

    @staticmethod
    def parse(record: FlowRecord) -> Flow | None:
        try:
            flow = parse_flow(record.source)
        except (LannerError, ValueError) as exc:
            log.error("stored flow %s.%s is invalid: %s", record.namespace, record.id, exc)
            return None
        return flow.model_copy(update={"revision": record.revision, "tenant_id": record.tenant_id})


__all__ = ["FlowCatalog", "FlowSource"]
