"""common.repository.elasticsearch_client against a real Elasticsearch node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from common.errors import RepositoryError
from common.repository.elasticsearch_client import (
    KINDS,
    TIME_BASED,
    create_client,
    ensure_indices,
    index_name,
    map_errors,
)

pytestmark = [pytest.mark.elasticsearch, pytest.mark.timeout(300)]


@pytest.fixture
def es(elasticsearch_url: str) -> Iterator[Elasticsearch]:
    client = create_client(elasticsearch_url)
    yield client
    client.close()


@pytest.fixture
def prefix(unique_name: str, es: Elasticsearch) -> Iterator[str]:
    prefix = unique_name + "_"
    yield prefix
    es.indices.delete(index=prefix + "*", allow_no_indices=True)
    for kind in KINDS:
        es.options(ignore_status=404).indices.delete_index_template(name=index_name(kind, prefix))


def test_ensure_indices_creates_every_index_once(es: Elasticsearch, prefix: str) -> None:
    created = ensure_indices(es, prefix)
    # daily indices (logs) are created by their template on their first write
    assert created == [prefix + kind for kind in KINDS if kind not in TIME_BASED]
    assert ensure_indices(es, prefix) == []
    mapping = es.indices.get_mapping(index=prefix + "executions")[prefix + "executions"]
    assert mapping["mappings"]["dynamic"] == "false"
    assert mapping["mappings"]["properties"]["labels"]["type"] == "nested"


def test_execution_documents_never_move_backwards(es: Elasticsearch, prefix: str) -> None:
    ensure_indices(es, prefix)
    index = index_name("executions", prefix)
    doc = {
        "id": "e1",
        "namespace": "company.team",
        "flowId": "hello",
        "state": {"current": "RUNNING"},
        "labels": [{"key": "env", "value": "prod"}],
        "outputs": {"anything": {"nested": [1, 2, 3]}},
    }
    es.index(index=index, id="e1", document=doc, version=2, version_type="external")
    stale = {**doc, "state": {"current": "CREATED"}}
    with pytest.raises(RepositoryError, match="409"), map_errors("indexing e1"):
        es.index(index=index, id="e1", document=stale, version=1, version_type="external")
    es.indices.refresh(index=index)

    by_label = es.search(
        index=index,
        query={
            "nested": {
                "path": "labels",
                "query": {
                    "bool": {
                        "filter": [
                            {"term": {"labels.key": "env"}},
                            {"term": {"labels.value": "prod"}},
                        ]
                    }
                },
            }
        },
    )["hits"]["hits"]
    assert [(h["_id"], h["_source"]["state"]["current"]) for h in by_label] == [("e1", "RUNNING")]


def test_a_deleted_index_comes_back_with_its_template_mapping(
    es: Elasticsearch, prefix: str
) -> None:
    ensure_indices(es, prefix)
    index = index_name("metrics", prefix)
    es.indices.delete(index=index)
    es.index(index=index, document={"name": "rows", "type": "counter"}, refresh="wait_for")
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["dynamic"] == "false"
    assert mapping["properties"]["name"]["type"] == "keyword"


def test_a_new_day_of_logs_gets_the_logs_mapping(es: Elasticsearch, prefix: str) -> None:
    ensure_indices(es, prefix)
    index = index_name("logs", prefix) + "-2024.05.01"
    es.index(index=index, document={"message": "hello", "level": "INFO"}, refresh="wait_for")
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["dynamic"] == "false"
    assert mapping["properties"]["level"]["type"] == "keyword"
    assert mapping["properties"]["timestamp"]["type"] == "date_nanos"


def test_an_unreachable_node_is_a_repository_error() -> None:
    client = create_client("http://127.0.0.1:1", request_timeout=2, max_retries=0)
    with pytest.raises(RepositoryError, match="cluster health"):
        ensure_indices(client)
