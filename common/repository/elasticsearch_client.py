"""Elasticsearch plumbing: the client factory, index templates and mappings, ``ensure_indices``.

One index per kind of document, named ``<prefix><kind>`` (prefix ``Settings.
elasticsearch_index_prefix``, default ``lanner_``)::

    lanner_flows           one document per flow (id tenant|namespace|flowId), latest revision
    lanner_flow_revisions  one document per flow revision (id tenant|namespace|flowId|revision)
    lanner_executions      one document per execution, external version = execution ``sequence``
    lanner_logs-YYYY.MM.DD log entries, one index per day of their timestamp (``TIME_BASED``),
                           mapped by the template ``lanner_logs-*``, created before their first
                           write and read through the alias ``lanner_logs``, dropped whole by
                           the retention
    lanner_metrics     task metrics
    lanner_triggers    trigger states
    lanner_workers     worker heartbeats

Documents are the camelCase JSON of ``common.models``, plus a ``repo`` object of fields computed
for the repository (tenant, search text, duration, ordering; ``common.repository.elasticsearch``).
Execution state dates and log timestamps are ``date_nanos``: the models carry microseconds and
sorting or filtering on milliseconds would disagree with the SQLite repository. Mappings are
``dynamic: false``: fields not listed below are kept in ``_source`` but not indexed, so task
outputs and inputs can never blow up the mapping. Each index has an index template too, so an
index deleted by hand comes back with the right mapping when the indexer writes to it again.

Client errors become ``common.errors.RepositoryError`` (``raise ... from exc``). Readiness checks
use ``cluster.health()``, never ``info()``/``ping()`` (``GET /`` is not served by the test
distribution, see tests/infra/provision.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from common.errors import RepositoryError

DEFAULT_PREFIX = "lanner_"

_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}
_NANOS = {"type": "date_nanos"}
_LONG = {"type": "long"}
_DOUBLE = {"type": "double"}
_TEXT = {"type": "text"}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer"}
_LABELS = {"type": "nested", "properties": {"key": _KEYWORD, "value": _KEYWORD}}
_STATE = {
    "properties": {
        "current": _KEYWORD,
        "startDate": _NANOS,
        "endDate": _NANOS,
        "histories": {"type": "object", "enabled": False},
    }
}
_WHERE = {
    "tenantId": _KEYWORD,
    "namespace": {"type": "keyword", "fields": {"text": _TEXT}},
    "flowId": {"type": "keyword", "fields": {"text": _TEXT}},
}

_FLOW = {
    "properties": {
        **_WHERE,
        "id": {"type": "keyword", "fields": {"text": _TEXT}},
        "revision": _INT,
        "description": _TEXT,
        "labels": {"type": "flattened"},
        "source": {"type": "text", "index": False},
        "disabled": _BOOL,
        "deleted": _BOOL,
        "updated": _DATE,
    }
}
# computed by the repository: the tenant (``main`` when the model has none), a document's
# insertion order and id (ties of a sort), the log level as a number
_REPO = {"tenant": _KEYWORD, "order": _LONG, "id": _KEYWORD, "level": _INT}

MAPPINGS: dict[str, dict[str, Any]] = {
    "flows": _FLOW,
    "flow_revisions": _FLOW,
    "executions": {
        "properties": {
            **_WHERE,
            "id": _KEYWORD,
            "flowRevision": _INT,
            "state": _STATE,
            "labels": _LABELS,
            "parentId": _KEYWORD,
            "originalId": _KEYWORD,
            "trigger": {"properties": {"id": _KEYWORD, "type": _KEYWORD}},
            "scheduleDate": _DATE,
            "deleted": _BOOL,
            "sequence": {"type": "long"},
            "taskRunList": {"type": "object", "enabled": False},
            # tenant; lower-case "id namespace flowId key:value... input:value..." (substring
            # search, repository.base.search_text);
            # seconds from start to end of an ended execution; "namespace/flowId"
            "repo": {
                "properties": {
                    "tenant": _KEYWORD,
                    "text": {"type": "keyword", "ignore_above": 8191},
                    "duration": _DOUBLE,
                    "flow": _KEYWORD,
                }
            },
        }
    },
    "logs": {
        "properties": {
            **_WHERE,
            "executionId": _KEYWORD,
            "taskId": _KEYWORD,
            "taskRunId": _KEYWORD,
            "attemptNumber": _INT,
            "triggerId": _KEYWORD,
            "timestamp": _NANOS,
            "level": _KEYWORD,
            "thread": _KEYWORD,
            "message": _TEXT,
            "repo": {"properties": _REPO},
        }
    },
    "metrics": {
        "properties": {
            **_WHERE,
            "executionId": _KEYWORD,
            "taskId": _KEYWORD,
            "taskRunId": _KEYWORD,
            "name": _KEYWORD,
            "type": _KEYWORD,
            "value": {"type": "double"},
            "tags": {"type": "flattened"},
            "timestamp": _NANOS,
            "repo": {"properties": _REPO},
        }
    },
    "triggers": {
        "properties": {
            **_WHERE,
            "uid": _KEYWORD,
            "triggerId": _KEYWORD,
            "executionId": _KEYWORD,
            "workerId": _KEYWORD,
            "date": _DATE,
            "nextExecutionDate": _DATE,
            "disabled": _BOOL,
            "repo": {"properties": _REPO},
        }
    },
    "workers": {
        "properties": {
            "workerId": _KEYWORD,
            "hostname": _KEYWORD,
            "group": _KEYWORD,
            "threads": _INT,
            "running": _INT,
            "date": _DATE,
            "status": _KEYWORD,
        }
    },
}

KINDS: tuple[str, ...] = tuple(MAPPINGS)
# kinds stored in one index per day (``<prefix><kind>-YYYY.MM.DD``), created on first write
TIME_BASED: frozenset[str] = frozenset({"logs"})


@contextmanager
def map_errors(what: str) -> Iterator[None]:
    """Translates Elasticsearch client errors raised inside the block into ``RepositoryError``."""
    try:
        yield
    except ApiError as exc:
        raise RepositoryError(
            f"Elasticsearch: {what} failed: HTTP {exc.meta.status} {exc.message}"
        ) from exc
    except TransportError as exc:  # no answer: refused, timed out, connection lost
        raise RepositoryError(
            f"Elasticsearch unavailable: {what} failed: {type(exc).__name__}: {exc.message}"
        ) from exc


def create_client(
    urls: str | Sequence[str], *, request_timeout: float = 30.0, **options: Any
) -> Elasticsearch:
    """An ``Elasticsearch`` client; ``urls`` is one URL, a comma-separated list, or a list."""
    hosts = [u.strip() for u in urls.split(",")] if isinstance(urls, str) else list(urls)
    settings: dict[str, Any] = {"retry_on_timeout": True, "max_retries": 3, **options}
    return Elasticsearch(hosts, request_timeout=request_timeout, **settings)


def index_name(kind: str, prefix: str = DEFAULT_PREFIX) -> str:
    if kind not in MAPPINGS:
        raise KeyError(f"unknown index kind {kind!r}; known: {', '.join(KINDS)}")
    return f"{prefix}{kind}"


def index_pattern(kind: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The index of ``kind``, or the pattern of its daily indices (its template's pattern)."""
    name = index_name(kind, prefix)
    return f"{name}-*" if kind in TIME_BASED else name


def index_template(
    kind: str, prefix: str = DEFAULT_PREFIX, *, shards: int = 1, replicas: int = 0
) -> dict[str, Any]:
    """Body of the composable index template of ``kind`` (``PUT _index_template/<name>``)."""
    return {
        "index_patterns": [index_pattern(kind, prefix)],
        "priority": 200,
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                # an execution's new state is what users wait for in the UI: searchable twice
                # as fast as the rest (the indexer's lag is mostly this refresh)
                "refresh_interval": "500ms" if kind == "executions" else "1s",
            },
            "mappings": {"dynamic": False, **MAPPINGS[kind]},
        },
        "_meta": {"managed_by": "lanner"},
    }


def ensure_indices(
    client: Elasticsearch,
    prefix: str = DEFAULT_PREFIX,
    *,
    shards: int = 1,
    replicas: int | None = None,
) -> list[str]:
    """Puts the index templates, creates missing indices, adds new fields to existing ones.

    Idempotent (a second call creates nothing) and returns the names of the indices it created
    (daily indices are not created here: their template creates them on their first write).
    ``replicas`` defaults to the number of data nodes minus one, at most 1.
    """
    with map_errors("reading cluster health"):
        nodes = client.cluster.health()["number_of_data_nodes"]
    if replicas is None:
        replicas = min(1, max(0, nodes - 1))
    created = []
    for kind in KINDS:
        name = index_name(kind, prefix)
        body = index_template(kind, prefix, shards=shards, replicas=replicas)
        with map_errors(f"putting index template {name}"):
            client.indices.put_index_template(
                name=name,
                index_patterns=body["index_patterns"],
                priority=body["priority"],
                template=body["template"],
                meta=body["_meta"],
            )
        if kind in TIME_BASED:
            with map_errors(f"updating indices {index_pattern(kind, prefix)}"):
                client.indices.put_mapping(
                    index=index_pattern(kind, prefix),
                    properties=MAPPINGS[kind]["properties"],
                    allow_no_indices=True,
                )
            continue
        with map_errors(f"creating index {name}"):
            if client.indices.exists(index=name):
                client.indices.put_mapping(index=name, properties=MAPPINGS[kind]["properties"])
                continue
            try:
                client.indices.create(index=name)
            except ApiError as exc:
                if exc.meta.status != 400 or "already_exists" not in str(exc.message):
                    raise
                continue
        created.append(name)
    return created
