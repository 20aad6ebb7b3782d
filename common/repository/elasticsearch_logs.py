"""Logs and metrics on Elasticsearch: entries deduplicated on their content, logs in one index
per day (see ``common.repository.elasticsearch``)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from common.errors import RepositoryError
from common.models.messages import LogEntry, MetricEntry

from .base import (
    MAX_RESULT_WINDOW,
    LogPurge,
    LogQuery,
    Page,
    check_page,
    decode_cursor,
    encode_cursor,
    level_number,
)
from .elasticsearch_client import map_errors
from .elasticsearch_store import (
    Store,
    bad_cursor,
    doc_hash,
    iso,
    namespace_filter,
    tenant_of,
)

log = logging.getLogger("lanner.repository")

RETENTION_CHECK_SECONDS = 3600.0


class ElasticsearchLogRepository:
    """Log lines in daily indices, deduplicated on their content (id = hash of the JSON)."""

    def __init__(self, store: Store, retention_days: int = 0) -> None:
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
            doc_id = doc_hash(body)
            doc = json.loads(body)
            doc["repo"] = {
                "tenant": tenant_of(entry.tenant_id),
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
            {"term": {"repo.tenant": tenant_of(tenant_id)}},
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
        filters: list[dict[str, Any]] = [{"term": {"repo.tenant": tenant_of(query.tenant_id)}}]
        if query.namespace:
            filters.append(namespace_filter("namespace", query.namespace))
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
                raise bad_cursor()
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

    def delete(self, purge: LogPurge) -> int:
        filters: list[dict[str, Any]] = [{"term": {"repo.tenant": tenant_of(purge.tenant_id)}}]
        if purge.namespace and purge.flow_id:
            filters.append({"term": {"namespace": purge.namespace}})
        elif purge.namespace:
            filters.append(namespace_filter("namespace", purge.namespace))
        for field, value in (("flowId", purge.flow_id), ("executionId", purge.execution_id)):
            if value:
                filters.append({"term": {field: value}})
        if purge.levels:
            filters.append({"terms": {"repo.level": [level_number(v) for v in purge.levels]}})
        dates: dict[str, str] = {}
        if purge.start_date is not None:
            dates["gte"] = iso(purge.start_date)
        if purge.end_date is not None:
            dates["lte"] = iso(purge.end_date)
        if dates:
            filters.append({"range": {"timestamp": dates}})
        return self.store.delete_matching(
            "purging logs",
            self.store.index("logs"),
            {"bool": {"filter": filters}},
            self._sort(False),
        )


class ElasticsearchMetricRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    def save_many(self, metrics: Sequence[MetricEntry]) -> None:
        first = self.store.orders(len(metrics))
        operations: list[dict[str, Any]] = []
        for i, entry in enumerate(metrics):
            body = entry.to_json()
            doc_id = doc_hash(body)
            doc = json.loads(body)
            doc["repo"] = {"tenant": tenant_of(entry.tenant_id), "order": first + i, "id": doc_id}
            operations.append({"create": {"_index": self.store.index("metrics"), "_id": doc_id}})
            operations.append(doc)
        self.store.bulk(operations, f"saving {len(metrics)} metrics")

    def find(self, tenant_id: str, execution_id: str) -> list[MetricEntry]:
        query = {
            "bool": {
                "filter": [
                    {"term": {"repo.tenant": tenant_of(tenant_id)}},
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

    def delete(self, tenant_id: str, execution_id: str) -> int:
        query = {
            "bool": {
                "filter": [
                    {"term": {"repo.tenant": tenant_of(tenant_id)}},
                    {"term": {"executionId": execution_id}},
                ]
            }
        }
        return self.store.delete_matching(
            f"purging the metrics of execution {execution_id}",
            self.store.index("metrics"),
            query,
            [{"timestamp": "asc"}, {"repo.order": "asc"}, {"repo.id": "asc"}],
        )
