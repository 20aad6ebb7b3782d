"""The plumbing of the Elasticsearch repositories: one ``Store`` (client, index names, bulk
writes, searches, realtime GETs, scans) shared by every repository of a deployment, and the
query helpers they share."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch
from prometheus_client import Counter

from common.errors import Problem, QueryError, RepositoryError

from .base import DEFAULT_TENANT
from .elasticsearch_client import ensure_indices, index_name, map_errors

log = logging.getLogger("lanner.repository")

SCAN_PAGE = 1000  # documents per request when a read returns everything (logs of an execution)

REFUSED = Counter(
    "lanner_repository_refused_documents",
    "Documents Elasticsearch refused as they are (HTTP 400) and the repository skipped.",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bad_cursor() -> QueryError:
    return QueryError([Problem("after", "not a cursor returned by a previous page")])


def iso(value: datetime) -> str:
    """UTC text of a date with its microseconds (naive dates are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def micros(value: datetime) -> int:
    """Microseconds since the epoch (naive dates are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


def tenant_of(tenant_id: str | None) -> str:
    return tenant_id or DEFAULT_TENANT


def doc_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def wildcard(text: str) -> str:
    """``*text*`` with the wildcard syntax of ``text`` escaped."""
    escaped = text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
    return f"*{escaped}*"


def namespace_filter(field: str, namespace: str) -> dict[str, Any]:
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


class Store:
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

    def delete_matching(self, what: str, index: str, query: dict[str, Any], sort: list[Any]) -> int:
        """Deletes every matching document, a page at a time in ``sort`` order (which must be
        total), refreshed so that searches no longer find them; returns how many. Bulk deletes
        by id rather than ``_delete_by_query``, which needs the ``reindex`` module that minimal
        distributions leave out."""
        deleted = 0
        for hits in self._pages(what, index, query, sort, source=False):
            operations = [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits]
            statuses = self.bulk(operations, what, refresh=True)
            deleted += sum(1 for status in statuses if status < 300)
        return deleted

    def scan(self, what: str, index: str, query: dict[str, Any], sort: list[Any]) -> Iterator[Any]:
        """Every matching document's source, in ``sort`` order (which must be total)."""
        for hits in self._pages(what, index, query, sort):
            for hit in hits:
                yield hit["_source"]

    def _pages(
        self,
        what: str,
        index: str,
        query: dict[str, Any],
        sort: list[Any],
        *,
        source: bool = True,
    ) -> Iterator[list[dict[str, Any]]]:
        """The matching hits a page at a time (``search_after`` in ``sort`` order, which must be
        total); a page is asked for only once the previous one was used (deleted, say)."""
        after: list[Any] | None = None
        while True:
            extra: dict[str, Any] = {"search_after": after} if after is not None else {}
            if not source:
                extra["source"] = False
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
            if hits:
                yield hits
            if len(hits) < SCAN_PAGE:
                return
            after = hits[-1]["sort"]
