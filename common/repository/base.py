"""Repository interfaces: what the webserver reads and the indexer writes.

One interface per entity (Kestra's ``<Entity>RepositoryInterface``); backends are
``sqlite`` (embedded) and ``elasticsearch``. Every ``save`` is idempotent, and executions are
versioned by ``Execution.sequence`` so a replayed older snapshot never overwrites a newer one.

Reads are bounded whatever the backend: a page holds at most ``MAX_PAGE_SIZE`` results, numbered
pages reach at most ``MAX_RESULT_WINDOW`` results deep (Elasticsearch's ``max_result_window``),
and deeper pages follow the opaque cursor ``Page.next`` (``search_after``). Statistics are
aggregations computed by the backend, never a walk over every execution.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from common.errors import Problem, QueryError
from common.models.execution import Execution, ExecutionHead
from common.models.messages import LogEntry, MetricEntry, WorkerHeartbeat
from common.models.state import State
from common.models.trigger import TriggerState

T = TypeVar("T")

MAX_PAGE_SIZE = 1000
MAX_RESULT_WINDOW = 10_000
MAX_BUCKETS = 10_000  # histogram buckets of one aggregation (per state)
MAX_FLOW_GROUPS = 1000  # flows of one per-flow aggregation
DEFAULT_TENANT = "main"
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


def level_number(level: str | None) -> int:
    """TRACE=0 < DEBUG < INFO < WARN < ERROR; unknown levels count as TRACE."""
    if not level:
        return 0
    name = level.upper()
    if name == "WARNING":
        name = "WARN"
    return LOG_LEVELS.index(name) if name in LOG_LEVELS else 0


@dataclass(frozen=True)
class Page(Generic[T]):
    results: list[T]
    total: int
    next: str | None = None  # cursor of the page after this one; None on the last page


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
    q: str | None = None  # text in id, namespace, flow id, labels, inputs (``search_text``)
    parent_id: str | None = None  # executions replayed from / triggered by this one
    page: int = 1  # numbered pages reach MAX_RESULT_WINDOW results deep; then use `after`
    size: int = 25  # at most MAX_PAGE_SIZE
    sort_desc: bool = True  # by start date, then id (a total order: cursors never skip a tie)
    after: str | None = None  # a previous page's `next`: the page after it (with page=1)


@dataclass(frozen=True)
class LogQuery:
    """Logs across executions (Kestra's ``/logs/search``), newest first by default."""

    tenant_id: str = "main"
    namespace: str | None = None  # prefix match, as executions
    flow_id: str | None = None
    execution_id: str | None = None
    task_id: str | None = None
    min_level: str | None = None
    start_date: datetime | None = None  # timestamp >= start_date
    end_date: datetime | None = None  # timestamp <= end_date
    # case-insensitive text in the message: SQLite finds any substring, Elasticsearch whole
    # words, the last one possibly a prefix ("disk fu" finds "Disk FULL", "isk" only on SQLite)
    q: str | None = None
    page: int = 1
    size: int = 50
    sort_desc: bool = True  # by timestamp, then insertion order
    after: str | None = None


@dataclass(frozen=True)
class LogPurge:
    """Logs to delete (Kestra's ``PurgeLogs``, and an execution's logs when it is purged)."""

    tenant_id: str = "main"
    namespace: str | None = None  # prefix match; the flow's namespace exactly with `flow_id`
    flow_id: str | None = None
    execution_id: str | None = None
    levels: Sequence[str] = ()  # any level when empty
    start_date: datetime | None = None  # timestamp >= start_date
    end_date: datetime | None = None  # timestamp <= end_date


class Interval(StrEnum):
    DAY = "day"
    HOUR = "hour"

    @property
    def length(self) -> timedelta:
        return timedelta(days=1) if self is Interval.DAY else timedelta(hours=1)


@dataclass(frozen=True)
class Durations:
    """Durations in seconds of the ended executions of a bucket (start to end)."""

    count: int = 0
    sum: float = 0.0
    min: float = 0.0
    max: float = 0.0

    def merge(self, other: Durations) -> Durations:
        if not self.count or not other.count:
            return other if other.count else self
        return Durations(
            self.count + other.count,
            self.sum + other.sum,
            min(self.min, other.min),
            max(self.max, other.max),
        )


@dataclass(frozen=True)
class StateBucket:
    """Executions started in ``[start, start + interval)`` (UTC) now in ``state``."""

    start: datetime
    state: State
    count: int
    durations: Durations


@dataclass(frozen=True)
class FlowStateCount:
    namespace: str
    flow_id: str
    state: State
    count: int


SEARCH_TEXT_INPUT_CHARS = 200  # of each input value in the search text
SEARCH_TEXT_CHARS = 8000  # of the whole search text


def search_text(execution: Execution | ExecutionHead) -> str:
    """What ``ExecutionQuery.q`` looks in (case-insensitive substring), in lower case: the id,
    namespace, flow id, ``key:value`` of each label and ``name:value`` of each scalar input
    (the first ``SEARCH_TEXT_INPUT_CHARS`` characters; files are their URI)."""
    parts = [execution.id, execution.namespace, execution.flow_id]
    parts += [f"{label.key}:{label.value}" for label in execution.labels]
    for name, value in (execution.inputs or {}).items():
        if isinstance(value, str | int | float | bool):
            parts.append(f"{name}:{value}"[: len(name) + 1 + SEARCH_TEXT_INPUT_CHARS])
    return " ".join(parts).lower()[:SEARCH_TEXT_CHARS]


@dataclass(frozen=True)
class FlowDurations:
    """Durations in seconds of a flow's ended executions (start to end): how many, and the
    value at each asked percent (``{50.0: 1.2, 99.0: 8.5}``; approximate on large sets)."""

    namespace: str
    flow_id: str
    count: int
    percentiles: dict[float, float]


DEFAULT_PERCENTS = (50.0, 90.0, 99.0)


def check_percents(percents: Sequence[float]) -> list[float]:
    """The percents as floats, or ``QueryError`` on ``percents`` if one is not in 0..100."""
    if not percents or any(not 0 <= p <= 100 for p in percents):
        raise QueryError([Problem("percents", "each must be between 0 and 100")])
    return [float(p) for p in percents]


def interpolated(ordered: Sequence[float], percent: float) -> float:
    """The ``percent`` percentile of ``ordered`` (ascending), interpolated linearly between
    the two nearest ranks (numpy's default)."""
    rank = percent / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def check_page(query: ExecutionQuery | LogQuery) -> None:
    """Raises ``QueryError`` when ``query`` asks for a page out of bounds. Problem paths are the
    API's parameter names, which these share."""
    problems = []
    if not 1 <= query.size <= MAX_PAGE_SIZE:
        problems.append(Problem("size", f"must be between 1 and {MAX_PAGE_SIZE}"))
    if query.page < 1:
        problems.append(Problem("page", "must be 1 or more"))
    elif query.after is not None and query.page != 1:
        problems.append(Problem("page", "must be 1 with a cursor (`after` says where to start)"))
    elif query.page * query.size > MAX_RESULT_WINDOW:
        problems.append(
            Problem(
                "page",
                f"page {query.page} of {query.size} goes past the first {MAX_RESULT_WINDOW} "
                "results; follow the `next` cursor of the previous pages instead",
            )
        )
    if problems:
        raise QueryError(problems)


def check_histogram(query: ExecutionQuery, interval: Interval) -> tuple[datetime, datetime]:
    """The histogram's date range, or ``QueryError`` if it is open or too many buckets long."""
    if query.start_date is None or query.end_date is None:
        missing = "startDate" if query.start_date is None else "endDate"
        raise QueryError([Problem(missing, "required for statistics")])
    if query.end_date < query.start_date:
        raise QueryError([Problem("endDate", "must not be before startDate")])
    if (query.end_date - query.start_date) / interval.length > MAX_BUCKETS:
        raise QueryError(
            [Problem("startDate", f"the range spans more than {MAX_BUCKETS} {interval}s")]
        )
    return query.start_date, query.end_date


def encode_cursor(sort_values: Sequence[object], sort_desc: bool) -> str:
    """An opaque cursor: the sort values of a page's last result, and the direction they hold
    for. Each backend puts its own sort values in it (``search_after``)."""
    text = json.dumps({"v": list(sort_values), "d": "desc" if sort_desc else "asc"})
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str, sort_desc: bool, length: int) -> list[object]:
    """The sort values of ``encode_cursor``; ``QueryError`` on ``after`` if not one of ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        values = data["v"]
        direction = data["d"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise QueryError([Problem("after", "not a cursor returned by a previous page")]) from None
    if not isinstance(values, list) or len(values) != length:
        raise QueryError([Problem("after", "not a cursor returned by a previous page")])
    if direction != ("desc" if sort_desc else "asc"):
        raise QueryError([Problem("after", "the cursor was made for the other sort order")])
    return values


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

    def search(self, query: ExecutionQuery) -> Page[Execution]:
        """One bounded page of the matching executions, sorted by start date then id.

        Raises ``QueryError`` naming ``size``, ``page`` or ``after`` when the query is out of
        bounds (page too large or too deep) or the cursor is not one of this backend's."""
        ...

    def count_by_state(self, query: ExecutionQuery) -> dict[State, int]:
        """How many executions match, per current state (paging fields are ignored)."""
        ...

    def histogram(self, query: ExecutionQuery, interval: Interval) -> list[StateBucket]:
        """Matching executions per start-date bucket and state, with their durations; only
        non-empty buckets, by start then state. ``query.start_date`` and ``end_date`` are
        required and span at most ``MAX_BUCKETS`` intervals (else ``QueryError``)."""
        ...

    def count_by_flow(self, query: ExecutionQuery) -> list[FlowStateCount]:
        """Matching executions per flow and state, for the ``MAX_FLOW_GROUPS`` flows with the
        most executions; sorted by namespace, flow id, state."""
        ...

    def duration_percentiles(
        self, query: ExecutionQuery, percents: Sequence[float] = DEFAULT_PERCENTS
    ) -> list[FlowDurations]:
        """Durations of the matching ended executions per flow, for the ``MAX_FLOW_GROUPS``
        flows with the most; sorted by namespace and flow id. ``QueryError`` on ``percents`` if
        one is not between 0 and 100."""
        ...

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

    def search(self, query: LogQuery) -> Page[LogEntry]:
        """One bounded page of the logs matching ``query`` (``QueryError`` if out of bounds)."""
        ...

    def delete(self, purge: LogPurge) -> int:
        """Deletes the logs ``purge`` selects; returns how many."""
        ...


class MetricRepository(Protocol):
    def save_many(self, metrics: Sequence[MetricEntry]) -> None: ...

    def find(self, tenant_id: str, execution_id: str) -> list[MetricEntry]: ...

    def delete(self, tenant_id: str, execution_id: str) -> int:
        """Deletes an execution's metrics; returns how many."""
        ...


class TriggerRepository(Protocol):
    """Trigger states as the scheduler publishes them (``triggers`` topic), keyed by uid."""

    def save_many(self, states: Sequence[TriggerState]) -> None:
        """Store each state; a state older (``date``) than the stored one changes nothing."""
        ...

    def delete_many(self, uids: Sequence[str]) -> None: ...

    def find(
        self, tenant_id: str, namespace: str | None = None, flow_id: str | None = None
    ) -> list[TriggerState]:
        """States of a tenant, of a namespace (prefix match) or of one flow."""
        ...


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
    triggers: TriggerRepository
