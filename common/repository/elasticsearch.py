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

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch

from common.errors import RepositoryError
from common.models.execution import Execution, ExecutionHead
from common.models.messages import WorkerHeartbeat
from common.models.state import State
from common.models.trigger import TriggerState

from .base import (
    DEFAULT_PERCENTS,
    MAX_FLOW_GROUPS,
    MAX_RESULT_WINDOW,
    Durations,
    ExecutionQuery,
    FlowDurations,
    FlowRecord,
    FlowStateCount,
    Interval,
    Page,
    Repositories,
    StateBucket,
    check_histogram,
    check_page,
    check_percents,
    decode_cursor,
    encode_cursor,
    search_text,
)
from .elasticsearch_client import DEFAULT_PREFIX, create_client
from .elasticsearch_logs import ElasticsearchLogRepository, ElasticsearchMetricRepository
from .elasticsearch_store import (
    Store,
    bad_cursor,
    iso,
    micros,
    namespace_filter,
    tenant_of,
    wildcard,
)

__all__ = [
    "ElasticsearchExecutionRepository",
    "ElasticsearchFlowRepository",
    "ElasticsearchLogRepository",
    "ElasticsearchMetricRepository",
    "ElasticsearchTriggerRepository",
    "ElasticsearchWorkerRepository",
    "connect",
    "elasticsearch_repositories",
]

log = logging.getLogger("lanner.repository")

TOMBSTONE_VERSION = 2**62  # a deleted execution's version: above any sequence


class ElasticsearchFlowRepository:
    """Flow revisions: a changed source is a new revision, an unchanged one keeps its own."""

    def __init__(self, store: Store) -> None:
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
            filters.append(namespace_filter("namespace", namespace))
        if q:
            pattern = wildcard(q)
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

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def _index(self) -> str:
        return self.store.index("executions")

    @staticmethod
    def _doc(head: ExecutionHead | Execution, doc: dict[str, Any]) -> dict[str, Any]:
        start, end = head.state.start_date, head.state.end_date
        repo: dict[str, Any] = {
            "tenant": tenant_of(head.tenant_id),
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
                        "_id": f"{tenant_of(head.tenant_id)}|{head.id}",
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
            f"{tenant_of(tenant_id)}|{execution_id}",
            f"reading execution {execution_id}",
        )
        if found is None or found["_source"].get("deleted"):
            return None
        return Execution.model_validate(found["_source"])

    @staticmethod
    def _filter(query: ExecutionQuery) -> dict[str, Any]:
        filters: list[dict[str, Any]] = [{"term": {"repo.tenant": tenant_of(query.tenant_id)}}]
        if query.namespace:
            filters.append(namespace_filter("namespace", query.namespace))
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
            filters.append({"wildcard": {"repo.text": {"value": wildcard(query.q.lower())}}})
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
                raise bad_cursor()
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
        doc_id = f"{tenant_of(tenant_id)}|{execution_id}"
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


class ElasticsearchWorkerRepository:
    """The last heartbeat of each worker (a newer heartbeat replaces an older one)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, heartbeat: WorkerHeartbeat) -> None:
        self.store.bulk(
            [
                {
                    "index": {
                        "_index": self.store.index("workers"),
                        "_id": heartbeat.worker_id,
                        "version": micros(heartbeat.date),
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
    def __init__(self, store: Store) -> None:
        self.store = store

    def save_many(self, states: Sequence[TriggerState]) -> None:
        operations: list[dict[str, Any]] = []
        for state in states:
            action: dict[str, Any] = {"_index": self.store.index("triggers"), "_id": state.uid}
            if state.date is not None:  # else: written whatever is stored
                action |= {"version": micros(state.date), "version_type": "external_gte"}
            doc = state.to_dict()
            doc["repo"] = {"tenant": tenant_of(state.tenant_id)}
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
        filters: list[dict[str, Any]] = [{"term": {"repo.tenant": tenant_of(tenant_id)}}]
        if namespace:
            filters.append(namespace_filter("namespace", namespace))
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
    store = Store(client, prefix, refresh)
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
