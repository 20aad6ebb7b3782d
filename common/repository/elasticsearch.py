"""Repositories on Elasticsearch 8: the same interfaces and contract as ``sqlite``.

Documents are the models' JSON plus a ``repo`` object of computed fields (see
``elasticsearch_client``). Identity and ordering:

- executions: id ``tenant|executionId``, external version ``sequence`` (``external_gte``), so a
  replayed snapshot never moves a document backwards and ``save`` says whether it wrote. A deleted
  execution keeps its document, marked ``deleted`` under the version ``TOMBSTONE_VERSION``: no
  late snapshot brings it back.
- flows: the latest revision of each flow in ``flows`` (id ``tenant|namespace|flowId``) and every
  revision in ``flow_revisions``; flow writes refresh at once (they are rare, and the indexer
  reads a flow's revisions right after writing one).
- logs and metrics: id = a hash of the entry's JSON and ``create`` operations, so a redelivered
  batch adds nothing and keeps the first insertion order (``repo.order``, the tie-break of equal
  timestamps). Logs go to one index per day of their timestamp, read through the alias
  ``<prefix>logs`` once their shard started; ``log_retention_days`` drops whole days.
- triggers and workers: external version = their date in microseconds, so an older state is
  ignored.

Reads by id use the realtime GET (a write is visible at once); searches see writes after the
next refresh (1 s, or ``refresh()``). Every client error becomes ``RepositoryError``; the indices
are (re)created on the first call that reaches Elasticsearch, so a repository built while
Elasticsearch is down recovers by itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch
from prometheus_client import Counter

from common.errors import Problem, QueryError, RepositoryError
from common.models.execution import Execution, ExecutionHead
from common.models.messages import LogEntry, MetricEntry, WorkerHeartbeat
from common.models.state import State
from common.models.trigger import TriggerState

from .base import (
    DEFAULT_PERCENTS,
    DEFAULT_TENANT,
    MAX_FLOW_GROUPS,
    MAX_RESULT_WINDOW,
    Durations,
    ExecutionQuery,
    FlowDurations,
    FlowRecord,
    FlowStateCount,
    Interval,
    LogQuery,
    Page,
    Repositories,
    StateBucket,
    check_histogram,
    check_page,
    check_percents,
    decode_cursor,
    encode_cursor,
    level_number,
    search_text,
)
from .elasticsearch_client import (
    DEFAULT_PREFIX,
    create_client,
    ensure_indices,
    index_name,
    map_errors,
)

log = logging.getLogger("lanner.repository")

TOMBSTONE_VERSION = 2**62  # a deleted execution's version: above any sequence
SCAN_PAGE = 1000  # documents per request when a read returns everything (logs of an execution)
RETENTION_CHECK_SECONDS = 3600.0

REFUSED = Counter(
    "lanner_repository_refused_documents",
    "Documents Elasticsearch refused as they are (HTTP 400) and the repository skipped.",
)

_BAD_CURSOR = QueryError([Problem("after", "not a cursor returned by a previous page")])


def iso(value: datetime) -> str:
    """UTC text of a date with its microseconds (naive dates are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _micros(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp()) * 1_000_000 + value.microsecond


def _tenant(tenant_id: str | None) -> str:
    return tenant_id or DEFAULT_TENANT


def _hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _wildcard(text: str) -> str:
    """``*text*`` with the wildcard syntax of ``text`` escaped."""
    escaped = text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
    return f"*{escaped}*"


def _namespace_filter(field: str, namespace: str) -> dict[str, Any]:
    """``namespace`` itself or below it (``company`` finds ``company.team``, not ``companyx``)."""
    return {
        "bool": {
            "should": [
                {"term": {field: namespace}},
                {"prefix": {field: namespace + "."}},
            ],
            "minimum_should_match": 1,
        }
    }


class _Store:
    """The client, the index names, and the indices created once Elasticsearch answers."""

    def __init__(self, client: Elasticsearch, prefix: str, refresh: bool = False) -> None:
        self.client = client
        self.prefix = prefix
        self.refresh = refresh
        self.refused = 0  # documents refused as they are (400), skipped
        self._ready = False
        self._lock = threading.Lock()
        self._order = 0

    def index(self, kind: str) -> str:
        return index_name(kind, self.prefix)

    def ensure(self) -> Elasticsearch:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    ensure_indices(self.client, self.prefix)
                    self._ready = True
        return self.client

    def orders(self, count: int) -> int:
        """The first of ``count`` increasing insertion orders (nanoseconds since the epoch, so
        that orders from several processes interleave by time)."""
        with self._lock:
            first = max(time.time_ns(), self._order + 1)
            self._order = first + count - 1
        return first

    def bulk(self, operations: list[dict[str, Any]], what: str, **options: Any) -> list[int]:
        """Runs a bulk request; returns each operation's status.

        A version conflict (409) or a missing document (404) is a status. A document that
        Elasticsearch refuses as it is (400: a field it cannot parse or index) can never be
        written: it is logged and counted in ``refused``, and the others are written, so that
        one bad document does not hold the indexer forever. Any other failure (the cluster
        busy or unavailable) raises ``RepositoryError``: the caller retries the whole batch,
        which is idempotent."""
        if not operations:
            return []
        client = self.ensure()
        if self.refresh:
            options["refresh"] = True
        with map_errors(what):
            response = client.bulk(operations=operations, **options)
        statuses = []
        for item in response["items"]:
            result = next(iter(item.values()))
            status = int(result.get("status", 500))
            if status >= 300 and status not in (404, 409):
                error = result.get("error", {})
                reason = error.get("reason") if isinstance(error, dict) else error
                kind = error.get("type") if isinstance(error, dict) else None
                if status != 400:
                    raise RepositoryError(f"Elasticsearch: {what} failed: HTTP {status} {reason}")
                self.refused += 1
                REFUSED.inc()
                log.error(
                    "Elasticsearch refused document %s of %s (%s: %s); it is skipped",
                    result.get("_id"),
                    result.get("_index"),
                    kind,
                    reason,
                )
            statuses.append(status)
        return statuses

    def search(self, what: str, **body: Any) -> dict[str, Any]:
        client = self.ensure()
        with map_errors(what):
            response: dict[str, Any] = client.search(**body).body
        return response

    def get(self, kind: str, doc_id: str, what: str) -> dict[str, Any] | None:
        """The document's source by the realtime GET, or None."""
        client = self.ensure()
        with map_errors(what):
            response = client.options(ignore_status=404).get(index=self.index(kind), id=doc_id)
        if not response.body.get("found"):
            return None
        result: dict[str, Any] = response.body
        return result

    def scan(self, what: str, index: str, query: dict[str, Any], sort: list[Any]) -> Iterator[Any]:
        """Every matching document's source, in ``sort`` order (which must be total)."""
        after: list[Any] | None = None
        while True:
            extra = {"search_after": after} if after is not None else {}
            hits = self.search(
                what,
                index=index,
                query=query,
                sort=sort,
                size=SCAN_PAGE,
                track_total_hits=False,
                ignore_unavailable=True,
                allow_no_indices=True,
                **extra,
            )["hits"]["hits"]
            for hit in hits:
                yield hit["_source"]
            if len(hits) < SCAN_PAGE:
                return
            after = hits[-1]["sort"]


class ElasticsearchFlowRepository:
    """Flow revisions: a changed source is a new revision, an unchanged one keeps its own."""

    def __init__(self, store: _Store) -> None:
        self.store = store

    @staticmethod
    def _key(tenant_id: str, namespace: str, flow_id: str) -> str:
        return f"{tenant_id}|{namespace}|{flow_id}"

    @staticmethod
    def _doc(record: FlowRecord) -> dict[str, Any]:
        return {
            "tenantId": record.tenant_id,
            "namespace": record.namespace,
            "id": record.id,
            "revision": record.revision,
            "source": record.source,
            "updated": iso(record.updated),
            "deleted": record.deleted,
            "disabled": record.disabled,
        }

    @staticmethod
    def _record(doc: dict[str, Any]) -> FlowRecord:
        return FlowRecord(
            tenant_id=doc["tenantId"],
            namespace=doc["namespace"],
            id=doc["id"],
            revision=int(doc["revision"]),
            source=doc["source"],
            updated=datetime.fromisoformat(doc["updated"]),
            deleted=bool(doc.get("deleted", False)),
            disabled=bool(doc.get("disabled", False)),
        )

    def _head(self, tenant_id: str, namespace: str, flow_id: str) -> dict[str, Any] | None:
        key = self._key(tenant_id, namespace, flow_id)
        return self.store.get("flows", key, f"reading flow {key}")

    def _write(self, head: dict[str, Any] | None, doc: dict[str, Any], what: str) -> bool:
        """Writes ``doc`` as its revision and as the latest one; False if another writer changed
        the latest revision since ``head`` was read."""
        key = self._key(doc["tenantId"], doc["namespace"], doc["id"])
        guard: dict[str, Any] = (
            {"if_seq_no": head["_seq_no"], "if_primary_term": head["_primary_term"]}
            if head is not None
            else {"op_type": "create"}
        )
        statuses = self.store.bulk(
            [
                {"index": {"_index": self.store.index("flows"), "_id": key, **guard}},
                doc,
                {
                    "index": {
                        "_index": self.store.index("flow_revisions"),
                        "_id": f"{key}|{doc['revision']}",
                    }
                },
                doc,
            ],
            what,
            refresh=True,
        )
        return statuses[0] < 300

    def save(self, record: FlowRecord) -> None:
        for _ in range(10):
            head = self._head(record.tenant_id, record.namespace, record.id)
            latest = head["_source"] if head is not None else None
            if latest is not None and latest["source"] == record.source and not latest["deleted"]:
                doc = {**latest, "disabled": record.disabled}
            else:
                revision = max(record.revision, int(latest["revision"]) + 1 if latest else 1)
                doc = self._doc(record)
                doc["revision"] = revision
            if self._write(head, doc, f"saving flow {record.namespace}.{record.id}"):
                return
        raise RepositoryError(
            f"Elasticsearch: saving flow {record.namespace}.{record.id} failed: "
            "too many concurrent writers"
        )

    def get(
        self, tenant_id: str, namespace: str, flow_id: str, revision: int | None = None
    ) -> FlowRecord | None:
        if revision is None:
            head = self._head(tenant_id, namespace, flow_id)
            if head is None or head["_source"].get("deleted"):
                return None
            return self._record(head["_source"])
        key = f"{self._key(tenant_id, namespace, flow_id)}|{revision}"
        found = self.store.get("flow_revisions", key, f"reading flow revision {key}")
        return self._record(found["_source"]) if found is not None else None

    def revisions(self, tenant_id: str, namespace: str, flow_id: str) -> list[FlowRecord]:
        query = {
            "bool": {
                "filter": [
                    {"term": {"tenantId": tenant_id}},
                    {"term": {"namespace": namespace}},
                    {"term": {"id": flow_id}},
                ]
            }
        }
        docs = self.store.scan(
            f"reading the revisions of flow {namespace}.{flow_id}",
            self.store.index("flow_revisions"),
            query,
            [{"revision": "asc"}],
        )
        return [self._record(doc) for doc in docs]

    def find(
        self, tenant_id: str, namespace: str | None = None, q: str | None = None
    ) -> list[FlowRecord]:
        filters: list[dict[str, Any]] = [{"term": {"tenantId": tenant_id}}]
        if namespace:
            filters.append(_namespace_filter("namespace", namespace))
        if q:
            pattern = _wildcard(q)
            filters.append(
                {
                    "bool": {
                        "should": [
                            {"wildcard": {f: {"value": pattern, "case_insensitive": True}}}
                            for f in ("id", "namespace")
                        ],
                        "minimum_should_match": 1,
                    }
                }
            )
        query = {"bool": {"filter": filters, "must_not": [{"term": {"deleted": True}}]}}
        docs = self.store.scan(
            "searching flows",
            self.store.index("flows"),
            query,
            [{"namespace": "asc"}, {"id": "asc"}],
        )
        return [self._record(doc) for doc in docs]

    def delete(self, tenant_id: str, namespace: str, flow_id: str) -> None:
        for _ in range(10):
            head = self._head(tenant_id, namespace, flow_id)
            if head is None or head["_source"].get("deleted"):
                return
            doc = {**head["_source"], "deleted": True}
            if self._write(head, doc, f"deleting flow {namespace}.{flow_id}"):
                return
        raise RepositoryError(
            f"Elasticsearch: deleting flow {namespace}.{flow_id} failed: "
            "too many concurrent writers"
        )

    def tenants(self) -> list[str]:
        response = self.store.search(
            "listing tenants",
            index=self.store.index("flows"),
            size=0,
            aggs={"tenants": {"terms": {"field": "tenantId", "size": 10_000}}},
        )
        return sorted(b["key"] for b in response["aggregations"]["tenants"]["buckets"])


class ElasticsearchExecutionRepository:
    """Executions versioned by ``sequence``: an older snapshot never overwrites a newer one."""

    def __init__(self, store: _Store) -> None:
        self.store = store

    @property
    def _index(self) -> str:
        return self.store.index("executions")

    @staticmethod
    def _doc(head: ExecutionHead | Execution, doc: dict[str, Any]) -> dict[str, Any]:
        start, end = head.state.start_date, head.state.end_date
        repo: dict[str, Any] = {
            "tenant": _tenant(head.tenant_id),
            "text": search_text(head),
            "flow": f"{head.namespace}/{head.flow_id}",
        }
        if start is not None and end is not None:
            repo["duration"] = (end - start).total_seconds()
        doc["repo"] = repo
        return doc

    def _save(self, items: Sequence[tuple[ExecutionHead | Execution, dict[str, Any]]]) -> int:
        operations: list[dict[str, Any]] = []
        for head, doc in items:
            operations.append(
                {
                    "index": {
                        "_index": self._index,
                        "_id": f"{_tenant(head.tenant_id)}|{head.id}",
                        "version": head.sequence,
                        "version_type": "external_gte",
                    }
                }
            )
            operations.append(self._doc(head, doc))
        statuses = self.store.bulk(operations, f"saving {len(items)} executions")
        return sum(1 for status in statuses if status < 300)

    def save(self, execution: Execution) -> bool:
        return self.save_many([execution]) == 1

    def save_many(self, executions: Sequence[Execution]) -> int:
        """Bulk save; returns how many snapshots were written (the others were older)."""
        return self._save([(e, e.to_dict()) for e in executions])

    def save_json_many(self, items: Sequence[tuple[ExecutionHead, bytes]]) -> int:
        """``save_many`` of executions given as their JSON and its indexed fields (the indexer)."""
        return self._save([(head, json.loads(body)) for head, body in items])

    def get(self, tenant_id: str, execution_id: str) -> Execution | None:
        found = self.store.get(
            "executions",
            f"{_tenant(tenant_id)}|{execution_id}",
            f"reading execution {execution_id}",
        )
        if found is None or found["_source"].get("deleted"):
            return None
        return Execution.model_validate(found["_source"])

    @staticmethod
    def _filter(query: ExecutionQuery) -> dict[str, Any]:
        filters: list[dict[str, Any]] = [{"term": {"repo.tenant": _tenant(query.tenant_id)}}]
        if query.namespace:
            filters.append(_namespace_filter("namespace", query.namespace))
        if query.flow_id:
            filters.append({"term": {"flowId": query.flow_id}})
        if query.states:
            filters.append({"terms": {"state.current": [str(s) for s in query.states]}})
        for key, value in query.labels.items():
            filters.append(
                {
                    "nested": {
                        "path": "labels",
                        "query": {
                            "bool": {
                                "filter": [
                                    {"term": {"labels.key": key}},
                                    {"term": {"labels.value": value}},
                                ]
                            }
                        },
                    }
                }
            )
        dates: dict[str, str] = {}
        if query.start_date is not None:
            dates["gte"] = iso(query.start_date)
        if query.end_date is not None:
            dates["lte"] = iso(query.end_date)
        if dates:
            filters.append({"range": {"state.startDate": dates}})
        if query.q:
            filters.append({"wildcard": {"repo.text": {"value": _wildcard(query.q.lower())}}})
        if query.parent_id:
            filters.append({"term": {"parentId": query.parent_id}})
        return {"bool": {"filter": filters, "must_not": [{"term": {"deleted": True}}]}}

    def search(self, query: ExecutionQuery) -> Page[Execution]:
        check_page(query)
        order = "desc" if query.sort_desc else "asc"
        # a missing start date sorts last in descending order and first in ascending (as SQLite)
        sort = [
            {
                "state.startDate": {
                    "order": order,
                    "missing": "_last" if query.sort_desc else "_first",
                }
            },
            {"id": {"order": order}},
        ]
        paging: dict[str, Any]
        if query.after is not None:
            start, last_id = decode_cursor(query.after, query.sort_desc, 2)
            if not isinstance(start, int) or not isinstance(last_id, str):
                raise _BAD_CURSOR
            # one more than the page says whether a next page exists
            paging = {"search_after": [start, last_id], "size": query.size + 1}
        else:
            offset = (query.page - 1) * query.size
            # stay inside the result window: the total says whether a next page exists
            size = min(query.size + 1, MAX_RESULT_WINDOW - offset)
            paging = {"from": offset, "size": size}
        response = self.store.search(
            "searching executions",
            index=self._index,
            query=self._filter(query),
            sort=sort,
            track_total_hits=True,
            **paging,
        )
        hits = response["hits"]["hits"]
        total = int(response["hits"]["total"]["value"])
        if query.after is None:
            more = len(hits) > query.size or (query.page * query.size < total)
        else:
            more = len(hits) > query.size
        hits = hits[: query.size]
        cursor = encode_cursor(hits[-1]["sort"], query.sort_desc) if more and hits else None
        results = [Execution.model_validate(hit["_source"]) for hit in hits]
        return Page(results, total, cursor)

    def count_by_state(self, query: ExecutionQuery) -> dict[State, int]:
        response = self.store.search(
            "counting executions by state",
            index=self._index,
            query=self._filter(query),
            size=0,
            aggs={"states": {"terms": {"field": "state.current", "size": len(State)}}},
        )
        buckets = response["aggregations"]["states"]["buckets"]
        return {State(b["key"]): int(b["doc_count"]) for b in buckets}

    def histogram(self, query: ExecutionQuery, interval: Interval) -> list[StateBucket]:
        check_histogram(query, interval)
        response = self.store.search(
            "computing the executions histogram",
            index=self._index,
            query=self._filter(query),
            size=0,
            aggs={
                "dates": {
                    "date_histogram": {
                        "field": "state.startDate",
                        "calendar_interval": "1d" if interval is Interval.DAY else "1h",
                        "time_zone": "UTC",
                        "min_doc_count": 1,
                    },
                    "aggs": {
                        "states": {
                            "terms": {"field": "state.current", "size": len(State)},
                            "aggs": {"durations": {"stats": {"field": "repo.duration"}}},
                        }
                    },
                }
            },
        )
        buckets = []
        for day in response["aggregations"]["dates"]["buckets"]:
            start = datetime.fromtimestamp(day["key"] / 1000, UTC)
            for state in day["states"]["buckets"]:
                stats = state["durations"]
                durations = (
                    Durations(int(stats["count"]), stats["sum"], stats["min"], stats["max"])
                    if stats["count"]
                    else Durations()
                )
                buckets.append(
                    StateBucket(start, State(state["key"]), int(state["doc_count"]), durations)
                )
        buckets.sort(key=lambda b: (b.start, str(b.state)))
        return buckets

    def count_by_flow(self, query: ExecutionQuery) -> list[FlowStateCount]:
        response = self.store.search(
            "counting executions by flow",
            index=self._index,
            query=self._filter(query),
            size=0,
            aggs={
                "flows": {
                    "terms": {
                        "field": "repo.flow",
                        "size": MAX_FLOW_GROUPS,
                        "order": [{"_count": "desc"}, {"_key": "asc"}],
                    },
                    "aggs": {"states": {"terms": {"field": "state.current", "size": len(State)}}},
                }
            },
        )
        counts = []
        for flow in response["aggregations"]["flows"]["buckets"]:
            namespace, _, flow_id = flow["key"].partition("/")  # neither holds a "/"
            for state in flow["states"]["buckets"]:
                counts.append(
                    FlowStateCount(namespace, flow_id, State(state["key"]), int(state["doc_count"]))
                )
        counts.sort(key=lambda c: (c.namespace, c.flow_id, str(c.state)))
        return counts

    def duration_percentiles(
        self, query: ExecutionQuery, percents: Sequence[float] = DEFAULT_PERCENTS
    ) -> list[FlowDurations]:
        wanted = check_percents(percents)
        ended = self._filter(query)
        ended["bool"]["filter"].append({"exists": {"field": "repo.duration"}})
        response = self.store.search(
            "computing duration percentiles",
            index=self._index,
            query=ended,
            size=0,
            aggs={
                "flows": {
                    "terms": {
                        "field": "repo.flow",
                        "size": MAX_FLOW_GROUPS,
                        "order": [{"_count": "desc"}, {"_key": "asc"}],
                    },
                    "aggs": {
                        "durations": {"percentiles": {"field": "repo.duration", "percents": wanted}}
                    },
                }
            },
        )
        found = []
        for flow in response["aggregations"]["flows"]["buckets"]:
            namespace, _, flow_id = flow["key"].partition("/")
            values = flow["durations"]["values"]  # {"50.0": seconds}
            percentiles = {p: float(values[str(p)]) for p in wanted}
            found.append(FlowDurations(namespace, flow_id, int(flow["doc_count"]), percentiles))
        found.sort(key=lambda f: (f.namespace, f.flow_id))
        return found

    def delete(self, tenant_id: str, execution_id: str) -> None:
        doc_id = f"{_tenant(tenant_id)}|{execution_id}"
        found = self.store.get("executions", doc_id, f"reading execution {execution_id}")
        if found is None:
            return
        # a tombstone, so that a late snapshot from the indexer cannot bring it back
        self.store.bulk(
            [
                {
                    "index": {
                        "_index": self._index,
                        "_id": doc_id,
                        "version": TOMBSTONE_VERSION,
                        "version_type": "external_gte",
                    }
                },
                {**found["_source"], "deleted": True},
            ],
            f"deleting execution {execution_id}",
            refresh=True,
        )


class ElasticsearchLogRepository:
    """Log lines in daily indices, deduplicated on their content (id = hash of the JSON)."""

    def __init__(self, store: _Store, retention_days: int = 0) -> None:
        self.store = store
        self.retention_days = retention_days
        self._retention_checked = 0.0
        self._days: set[str] = set()  # daily indices known to be open and in the alias

    def _daily(self, stamp: datetime) -> str:
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return f"{self.store.index('logs')}-{stamp.astimezone(UTC):%Y.%m.%d}"

    def _open_day(self, name: str) -> None:
        """Creates the daily index ``name`` if missing, waits for its shard, and only then adds it
        to the ``<prefix>logs`` alias that reads go through: a search never meets a day whose
        shard is still starting (which fails the whole search, not just that day)."""
        if name in self._days:
            return
        client = self.store.ensure()
        with map_errors(f"creating log index {name}"):
            if not client.indices.exists(index=name):
                client.options(ignore_status=400).indices.create(index=name)
            client.cluster.health(index=name, wait_for_status="yellow", timeout="30s")
            client.indices.put_alias(index=name, name=self.store.index("logs"))
        self._days.add(name)

    def _oldest_kept(self, now: datetime | None = None) -> date | None:
        """The first day the retention keeps (None: every day)."""
        if self.retention_days <= 0:
            return None
        return (now or datetime.now(UTC)).astimezone(UTC).date() - timedelta(
            days=self.retention_days
        )

    def save_many(self, logs: Sequence[LogEntry]) -> None:
        oldest = self._oldest_kept()
        if oldest is not None:  # a replay of days gone: not written (nor their index created)
            logs = [e for e in logs if self._daily(e.timestamp)[-10:] >= f"{oldest:%Y.%m.%d}"]
        if not logs:
            return
        for name in sorted({self._daily(entry.timestamp) for entry in logs}):
            self._open_day(name)
        first = self.store.orders(len(logs))
        operations: list[dict[str, Any]] = []
        for i, entry in enumerate(logs):
            body = entry.to_json()
            doc_id = _hash(body)
            doc = json.loads(body)
            doc["repo"] = {
                "tenant": _tenant(entry.tenant_id),
                "order": first + i,
                "id": doc_id,
                "level": level_number(entry.level),
            }
            operations.append({"create": {"_index": self._daily(entry.timestamp), "_id": doc_id}})
            operations.append(doc)
        self.store.bulk(operations, f"saving {len(logs)} log entries")
        self._maybe_apply_retention()

    def _maybe_apply_retention(self) -> None:
        if self.retention_days <= 0:
            return
        now = time.monotonic()
        if self._retention_checked and now - self._retention_checked < RETENTION_CHECK_SECONDS:
            return
        self._retention_checked = now
        try:
            self.apply_retention()
        except RepositoryError as exc:
            log.warning("log retention: %s (retried in an hour)", exc)

    def apply_retention(self, now: datetime | None = None) -> list[str]:
        """Deletes the daily log indices older than ``retention_days`` whole days before
        ``now``; returns their names. Nothing when the retention is 0 (keep every day).
        ``save_many`` checks it at most once an hour, and never writes logs of those days."""
        oldest_kept = self._oldest_kept(now)
        if oldest_kept is None:
            return []
        client = self.store.ensure()
        base = self.store.index("logs") + "-"
        with map_errors("listing log indices"):
            names = list(
                client.indices.get(index=base + "*", allow_no_indices=True, expand_wildcards="all")
            )
        expired = []
        for name in names:
            try:
                day = datetime.strptime(name[len(base) :], "%Y.%m.%d").date()
            except ValueError:
                continue
            if day < oldest_kept:
                expired.append(name)
        for name in sorted(expired):
            with map_errors(f"deleting log index {name}"):
                client.options(ignore_status=404).indices.delete(index=name)
            self._days.discard(name)
            log.info("log retention: deleted %s (older than %d days)", name, self.retention_days)
        return sorted(expired)

    _SORT_FIELDS = ("timestamp", "repo.order", "repo.id")

    def _sort(self, desc: bool) -> list[dict[str, Any]]:
        order = "desc" if desc else "asc"
        return [{field: {"order": order}} for field in self._SORT_FIELDS]

    def find(
        self,
        tenant_id: str,
        execution_id: str,
        task_run_id: str | None = None,
        min_level: str | None = None,
    ) -> list[LogEntry]:
        filters: list[dict[str, Any]] = [
            {"term": {"repo.tenant": _tenant(tenant_id)}},
            {"term": {"executionId": execution_id}},
        ]
        if task_run_id:
            filters.append({"term": {"taskRunId": task_run_id}})
        if min_level:
            filters.append({"range": {"repo.level": {"gte": level_number(min_level)}}})
        docs = self.store.scan(
            f"reading the logs of execution {execution_id}",
            self.store.index("logs"),  # the alias of the open days
            {"bool": {"filter": filters}},
            self._sort(False),
        )
        return [LogEntry.model_validate(doc) for doc in docs]

    def search(self, query: LogQuery) -> Page[LogEntry]:
        check_page(query)
        filters: list[dict[str, Any]] = [{"term": {"repo.tenant": _tenant(query.tenant_id)}}]
        if query.namespace:
            filters.append(_namespace_filter("namespace", query.namespace))
        for field, value in (
            ("flowId", query.flow_id),
            ("executionId", query.execution_id),
            ("taskId", query.task_id),
        ):
            if value:
                filters.append({"term": {field: value}})
        if query.min_level:
            filters.append({"range": {"repo.level": {"gte": level_number(query.min_level)}}})
        dates: dict[str, str] = {}
        if query.start_date is not None:
            dates["gte"] = iso(query.start_date)
        if query.end_date is not None:
            dates["lte"] = iso(query.end_date)
        if dates:
            filters.append({"range": {"timestamp": dates}})
        if query.q:
            # words of the message (standard analyzer: case-insensitive), the last one a prefix
            filters.append({"match_phrase_prefix": {"message": {"query": query.q}}})
        paging: dict[str, Any]
        if query.after is not None:
            values = decode_cursor(query.after, query.sort_desc, 3)
            if not all(isinstance(v, t) for v, t in zip(values, (int, int, str), strict=True)):
                raise _BAD_CURSOR
            paging = {"search_after": values, "size": query.size + 1}
        else:
            offset = (query.page - 1) * query.size
            paging = {"from": offset, "size": min(query.size + 1, MAX_RESULT_WINDOW - offset)}
        response = self.store.search(
            "searching logs",
            index=self.store.index("logs"),  # the alias of the open days
            query={"bool": {"filter": filters}},
            sort=self._sort(query.sort_desc),
            track_total_hits=True,
            ignore_unavailable=True,
            allow_no_indices=True,
            **paging,
        )
        hits = response["hits"]["hits"]
        total = int(response["hits"]["total"]["value"])
        more = len(hits) > query.size or (query.after is None and query.page * query.size < total)
        hits = hits[: query.size]
        cursor = encode_cursor(hits[-1]["sort"], query.sort_desc) if more and hits else None
        return Page([LogEntry.model_validate(h["_source"]) for h in hits], total, cursor)


class ElasticsearchMetricRepository:
    def __init__(self, store: _Store) -> None:
        self.store = store

    def save_many(self, metrics: Sequence[MetricEntry]) -> None:
        first = self.store.orders(len(metrics))
        operations: list[dict[str, Any]] = []
        for i, entry in enumerate(metrics):
            body = entry.to_json()
            doc_id = _hash(body)
            doc = json.loads(body)
            doc["repo"] = {"tenant": _tenant(entry.tenant_id), "order": first + i, "id": doc_id}
            operations.append({"create": {"_index": self.store.index("metrics"), "_id": doc_id}})
            operations.append(doc)
        self.store.bulk(operations, f"saving {len(metrics)} metrics")

    def find(self, tenant_id: str, execution_id: str) -> list[MetricEntry]:
        query = {
            "bool": {
                "filter": [
                    {"term": {"repo.tenant": _tenant(tenant_id)}},
                    {"term": {"executionId": execution_id}},
                ]
            }
        }
        docs = self.store.scan(
            f"reading the metrics of execution {execution_id}",
            self.store.index("metrics"),
            query,
            [{"timestamp": "asc"}, {"repo.order": "asc"}, {"repo.id": "asc"}],
        )
        return [MetricEntry.model_validate(doc) for doc in docs]


class ElasticsearchWorkerRepository:
    """The last heartbeat of each worker (a newer heartbeat replaces an older one)."""

    def __init__(self, store: _Store) -> None:
        self.store = store

    def save(self, heartbeat: WorkerHeartbeat) -> None:
        self.store.bulk(
            [
                {
                    "index": {
                        "_index": self.store.index("workers"),
                        "_id": heartbeat.worker_id,
                        "version": _micros(heartbeat.date),
                        "version_type": "external_gte",
                    }
                },
                heartbeat.to_dict(),
            ],
            f"saving the heartbeat of worker {heartbeat.worker_id}",
        )

    def all(self) -> list[WorkerHeartbeat]:
        docs = self.store.scan(
            "listing workers", self.store.index("workers"), {"match_all": {}}, [{"workerId": "asc"}]
        )
        return [WorkerHeartbeat.model_validate(doc) for doc in docs]


class ElasticsearchTriggerRepository:
    def __init__(self, store: _Store) -> None:
        self.store = store

    def save_many(self, states: Sequence[TriggerState]) -> None:
        operations: list[dict[str, Any]] = []
        for state in states:
            action: dict[str, Any] = {"_index": self.store.index("triggers"), "_id": state.uid}
            if state.date is not None:  # else: written whatever is stored
                action |= {"version": _micros(state.date), "version_type": "external_gte"}
            doc = state.to_dict()
            doc["repo"] = {"tenant": _tenant(state.tenant_id)}
            operations += [{"index": action}, doc]
        self.store.bulk(operations, f"saving {len(states)} trigger states")

    def delete_many(self, uids: Sequence[str]) -> None:
        index = self.store.index("triggers")
        self.store.bulk(
            [{"delete": {"_index": index, "_id": uid}} for uid in uids],
            f"deleting {len(uids)} trigger states",
        )

    def find(
        self, tenant_id: str, namespace: str | None = None, flow_id: str | None = None
    ) -> list[TriggerState]:
        filters: list[dict[str, Any]] = [{"term": {"repo.tenant": _tenant(tenant_id)}}]
        if namespace:
            filters.append(_namespace_filter("namespace", namespace))
        if flow_id:
            filters.append({"term": {"flowId": flow_id}})
        docs = self.store.scan(
            "searching trigger states",
            self.store.index("triggers"),
            {"bool": {"filter": filters}},
            [{"namespace": "asc"}, {"flowId": "asc"}, {"uid": "asc"}],
        )
        return [TriggerState.model_validate(doc) for doc in docs]


def elasticsearch_repositories(
    client: Elasticsearch,
    prefix: str = DEFAULT_PREFIX,
    *,
    log_retention_days: int = 0,
    refresh: bool = False,
) -> Repositories:
    """Every repository on one Elasticsearch cluster, in the indices named ``<prefix><kind>``.

    Creates the indices now if Elasticsearch answers, else on the first call that reaches it.
    With ``refresh``, every write refreshes the indices it wrote to, so searches see it at once
    (tests that call a backend-neutral API; too costly under the indexer's load).
    """
    store = _Store(client, prefix, refresh)
    try:
        store.ensure()
    except RepositoryError as exc:
        log.warning("Elasticsearch repository: indices not ready yet (%s); retried on use", exc)
    return Repositories(
        flows=ElasticsearchFlowRepository(store),
        executions=ElasticsearchExecutionRepository(store),
        logs=ElasticsearchLogRepository(store, log_retention_days),
        metrics=ElasticsearchMetricRepository(store),
        workers=ElasticsearchWorkerRepository(store),
        triggers=ElasticsearchTriggerRepository(store),
    )


def connect(
    urls: str | Sequence[str],
    prefix: str = DEFAULT_PREFIX,
    *,
    log_retention_days: int = 0,
    request_timeout: float = 10.0,
) -> Repositories:
    """``elasticsearch_repositories`` on a new client of ``urls``. A request that gets no answer
    within ``request_timeout`` seconds fails (a frozen node is not asked twice), one refused
    connection is retried on another node: a read during an outage fails in bounded time, and
    the webserver answers 503 instead of holding the request."""
    client = create_client(
        urls, request_timeout=request_timeout, max_retries=1, retry_on_timeout=False
    )
    return elasticsearch_repositories(client, prefix, log_retention_days=log_retention_days)
