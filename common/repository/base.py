"""Repository interfaces: what the webserver reads and the indexer writes.

One interface per entity (Kestra's ``<Entity>RepositoryInterface``); backends are
``sqlite`` (embedded) and ``elasticsearch``. Every ``save`` is idempotent, and executions are
versioned by ``Execution.sequence`` so a replayed older snapshot never overwrites a newer one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from common.models.execution import Execution
from common.models.messages import LogEntry, MetricEntry, WorkerHeartbeat
from common.models.state import State

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    results: list[T]
    total: int


@dataclass(frozen=True)
class FlowRecord:
    """A stored flow revision: the user's YAML source as written, plus its identity."""

    tenant_id: str
    namespace: str
    id: str
    revision: int
    source: str
    updated: datetime
    deleted: bool = False
    disabled: bool = False


@dataclass(frozen=True)
class ExecutionQuery:
    tenant_id: str = "main"
    namespace: str | None = None  # prefix match: `company` finds `company.team`
    flow_id: str | None = None
    states: Sequence[State] = ()
    labels: dict[str, str] = field(default_factory=dict)
    start_date: datetime | None = None
    end_date: datetime | None = None
    q: str | None = None  # full text over id, namespace, flow id, labels
    parent_id: str | None = None  # executions replayed from / triggered by this one
    page: int = 1
    size: int = 25
    sort_desc: bool = True


class FlowRepository(Protocol):
    def save(self, record: FlowRecord) -> None: ...

    def get(
        self, tenant_id: str, namespace: str, flow_id: str, revision: int | None = None
    ) -> FlowRecord | None: ...

    def revisions(self, tenant_id: str, namespace: str, flow_id: str) -> list[FlowRecord]: ...

    def find(
        self, tenant_id: str, namespace: str | None = None, q: str | None = None
    ) -> list[FlowRecord]:
        """Latest non-deleted revision of each matching flow."""
        ...

    def delete(self, tenant_id: str, namespace: str, flow_id: str) -> None: ...

    def tenants(self) -> list[str]:
        """Tenants that hold at least one flow revision."""
        ...


class ExecutionRepository(Protocol):
    def save(self, execution: Execution) -> bool:
        """Store unless a snapshot with a higher ``sequence`` is stored; True if written."""
        ...

    def get(self, tenant_id: str, execution_id: str) -> Execution | None: ...

    def search(self, query: ExecutionQuery) -> Page[Execution]: ...

    def delete(self, tenant_id: str, execution_id: str) -> None: ...


class LogRepository(Protocol):
    def save_many(self, logs: Sequence[LogEntry]) -> None: ...

    def find(
        self,
        tenant_id: str,
        execution_id: str,
        task_run_id: str | None = None,
        min_level: str | None = None,
    ) -> list[LogEntry]: ...


class MetricRepository(Protocol):
    def save_many(self, metrics: Sequence[MetricEntry]) -> None: ...

    def find(self, tenant_id: str, execution_id: str) -> list[MetricEntry]: ...


class WorkerRepository(Protocol):
    def save(self, heartbeat: WorkerHeartbeat) -> None: ...

    def all(self) -> list[WorkerHeartbeat]: ...


@dataclass
class Repositories:
    flows: FlowRepository
    executions: ExecutionRepository
    logs: LogRepository
    metrics: MetricRepository
    workers: WorkerRepository
