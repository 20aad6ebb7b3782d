"""The repository contract on a real Elasticsearch node, plus what only this backend has:
daily log indices and their retention, outages as ``RepositoryError``, the indexer's JSON path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from common.errors import RepositoryError
from common.models.messages import LogEntry
from common.models.state import State
from common.repository.base import ExecutionQuery, Interval, LogQuery, Repositories
from common.repository.elasticsearch import (
    ElasticsearchExecutionRepository,
    ElasticsearchLogRepository,
    connect,
    elasticsearch_repositories,
)
from common.repository.elasticsearch_client import create_client, index_name
from tests.contracts.repository import T0, RepositoryContract, make_execution
from tests.infra.elasticsearch import drop_indices as drop

pytestmark = [pytest.mark.elasticsearch, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def es(elasticsearch_url: str) -> Iterator[Elasticsearch]:
    client = create_client(elasticsearch_url)
    yield client
    client.close()


@pytest.fixture
def prefix(unique_name: str, es: Elasticsearch) -> Iterator[str]:
    prefix = unique_name + "_"
    yield prefix
    drop(es, prefix)


@pytest.fixture
def repositories(es: Elasticsearch, prefix: str) -> Repositories:
    return elasticsearch_repositories(es, prefix)


class TestElasticsearchRepository(RepositoryContract):
    @pytest.fixture(autouse=True)
    def _es(self, es: Elasticsearch, prefix: str) -> None:
        self.es, self.prefix = es, prefix

    def refresh(self, repositories: Repositories) -> None:
        self.es.indices.refresh(index=self.prefix + "*", allow_no_indices=True)


def test_an_execution_is_readable_by_id_before_any_refresh(repositories: Repositories) -> None:
    repositories.executions.save(make_execution("e1", state=State.RUNNING, sequence=3))
    got = repositories.executions.get("main", "e1")
    assert got is not None and got.state.current == State.RUNNING


def test_indexer_json_path_and_replays(es: Elasticsearch, repositories: Repositories) -> None:
    """The indexer's ``save_json_many`` stores the JSON as it came; replaying older snapshots of
    the topic never moves a document backwards."""
    from common.models.execution import ExecutionHead

    executions = repositories.executions
    assert isinstance(executions, ElasticsearchExecutionRepository)
    snapshots = [
        make_execution("e1", state=state, sequence=seq)
        for seq, state in enumerate([State.CREATED, State.RUNNING, State.SUCCESS])
    ]

    def items(chosen: list[int]) -> list[tuple[ExecutionHead, bytes]]:
        out = []
        for i in chosen:
            body = snapshots[i].to_json()
            out.append((ExecutionHead.model_validate_json(body), body))
        return out

    assert executions.save_json_many(items([2])) == 1
    assert executions.save_json_many(items([0])) == 0  # the replay from the beginning
    assert executions.save_json_many(items([1])) == 0
    assert executions.save_json_many(items([2])) == 1  # the same snapshot again: harmless
    es.indices.refresh(index=index_name("executions", executions.store.prefix))
    found = executions.search(ExecutionQuery(states=[State.SUCCESS]))
    assert [e.id for e in found.results] == ["e1"]
    got = executions.get("main", "e1")
    assert got is not None and got.state.current == State.SUCCESS


def test_a_deleted_execution_stays_deleted(es: Elasticsearch, repositories: Repositories) -> None:
    executions = repositories.executions
    executions.save(make_execution("e1", sequence=4))
    executions.delete("main", "e1")
    assert not executions.save(make_execution("e1", state=State.SUCCESS, sequence=9))
    assert executions.get("main", "e1") is None
    assert executions.search(ExecutionQuery()).total == 0


def test_logs_go_to_daily_indices_and_old_days_are_dropped(es: Elasticsearch, prefix: str) -> None:
    repositories = elasticsearch_repositories(es, prefix, log_retention_days=2)
    logs = repositories.logs
    assert isinstance(logs, ElasticsearchLogRepository)
    now = datetime.now(UTC)
    days = [now - timedelta(days=d) for d in (0, 1, 2, 3, 4)]
    entries = [
        LogEntry(namespace="n", flow_id="f", execution_id="e1", timestamp=day, message=f"day {i}")
        for i, day in enumerate(days)
    ]
    base = index_name("logs", prefix)

    def daily() -> list[str]:
        return sorted(es.indices.get(index=base + "-*"))

    # the first write checks the retention: today and the two days before it are kept
    logs.save_many(entries)
    assert daily() == [f"{base}-{d:%Y.%m.%d}" for d in sorted(days[:3])]
    es.indices.refresh(index=prefix + "*")
    assert [e.message for e in logs.find("main", "e1")] == ["day 2", "day 1", "day 0"]
    assert logs.search(LogQuery()).total == 3

    logs.save_many(entries)  # a replay: the days gone are not written again
    assert daily() == [f"{base}-{d:%Y.%m.%d}" for d in sorted(days[:3])]
    es.indices.refresh(index=prefix + "*")
    assert logs.search(LogQuery()).total == 3
    assert logs.apply_retention(now=now + timedelta(days=1)) == [f"{base}-{days[2]:%Y.%m.%d}"]
    assert daily() == [f"{base}-{d:%Y.%m.%d}" for d in sorted(days[:2])]


def test_logs_replayed_in_other_batches_are_not_doubled(
    es: Elasticsearch, repositories: Repositories, prefix: str
) -> None:
    entries = [
        LogEntry(namespace="n", flow_id="f", execution_id="e1", timestamp=T0, message=f"at {i}")
        for i in range(30)
    ]
    repositories.logs.save_many(entries[:20])
    repositories.logs.save_many(entries[10:])  # a redelivered overlap
    repositories.logs.save_many(entries)
    es.indices.refresh(index=prefix + "*")
    found = repositories.logs.find("main", "e1")
    assert [e.message for e in found] == [e.message for e in entries]  # insertion order kept
    assert repositories.logs.search(LogQuery(execution_id="e1")).total == 30


def test_an_unreachable_cluster_raises_repository_errors(unique_name: str) -> None:
    from tests.infra.processes import free_ports

    url = f"http://127.0.0.1:{free_ports(1)[0]}"
    repositories = connect(url, unique_name + "_", request_timeout=2)  # builds while down
    calls = [
        lambda: repositories.executions.search(ExecutionQuery()),
        lambda: repositories.executions.get("main", "e1"),
        lambda: repositories.executions.save(make_execution("e1")),
        lambda: repositories.logs.search(LogQuery()),
        lambda: repositories.flows.find("main"),
        lambda: repositories.triggers.find("main"),
    ]
    for call in calls:
        with pytest.raises(RepositoryError, match="Elasticsearch"):
            call()


def test_the_repository_recovers_when_elasticsearch_comes_back(
    elasticsearch_url: str, es: Elasticsearch, unique_name: str
) -> None:
    """Built while its URL answers nothing, then pointed at a live node: no restart needed."""
    from tests.infra.processes import free_ports

    prefix = unique_name + "_"
    dead = create_client(f"http://127.0.0.1:{free_ports(1)[0]}", request_timeout=2, max_retries=0)
    repositories = elasticsearch_repositories(dead, prefix)
    with pytest.raises(RepositoryError):
        repositories.executions.search(ExecutionQuery())
    try:
        store = repositories.executions.store  # type: ignore[attr-defined]
        store.client = es  # the same repository object, now reaching a node
        assert repositories.executions.save(make_execution("e1"))
        assert repositories.executions.get("main", "e1") is not None
    finally:
        drop(es, prefix)


def test_histogram_buckets_are_utc_dates(es: Elasticsearch, repositories: Repositories) -> None:
    start = datetime(2024, 5, 1, 23, 59, 59, 999_999, tzinfo=UTC)
    repositories.executions.save(make_execution("e1", start=start, state=State.SUCCESS))
    es.indices.refresh(index=index_name("executions", repositories.executions.store.prefix))  # type: ignore[attr-defined]
    query = ExecutionQuery(start_date=start - timedelta(days=1), end_date=start)
    hours = repositories.executions.histogram(query, Interval.HOUR)
    assert [(b.start, b.count) for b in hours] == [(datetime(2024, 5, 1, 23, tzinfo=UTC), 1)]


def test_a_document_elasticsearch_refuses_is_skipped_not_retried_forever(
    es: Elasticsearch, repositories: Repositories
) -> None:
    """A label too long to index (a keyword term over 32 KB) can never be written: the others
    of the batch are, and the write does not fail (the indexer would retry it forever)."""
    executions = repositories.executions
    assert isinstance(executions, ElasticsearchExecutionRepository)
    huge = make_execution("huge", labels={"blob": "x" * 40_000})
    assert executions.save_many([make_execution("ok1"), huge, make_execution("ok2")]) == 2
    assert executions.store.refused == 1
    assert executions.get("main", "huge") is None
    assert executions.get("main", "ok2") is not None


def test_the_settings_choose_the_elasticsearch_repository(
    elasticsearch_url: str, es: Elasticsearch, prefix: str, tmp_path: Path
) -> None:
    from common.backends import create_repositories
    from common.settings import Settings

    settings = Settings(
        data_dir=tmp_path,
        repository="elasticsearch",
        elasticsearch_url=elasticsearch_url,
        elasticsearch_index_prefix=prefix,
        elasticsearch_logs_retention_days=7,
    )
    repositories = create_repositories(settings)
    assert isinstance(repositories.executions, ElasticsearchExecutionRepository)
    assert isinstance(repositories.logs, ElasticsearchLogRepository)
    assert repositories.logs.retention_days == 7
    repositories.executions.save(make_execution("e1"))
    assert es.exists(index=index_name("executions", prefix), id="main|e1")
    assert not (tmp_path / "lanner.db").exists()  # no SQLite database opened
