"""The Elasticsearch repository and the webserver's reads while the node is frozen (SIGSTOP):
every read fails with ``RepositoryError`` / 503 naming Elasticsearch, and recovers by itself
once the node runs again."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from common.backends import Backends
from common.errors import RepositoryError
from common.models.state import State
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.base import ExecutionQuery, Repositories
from common.repository.elasticsearch import connect
from common.settings import Settings
from common.storage.local import LocalStorage
from tests.contracts.repository import make_execution
from tests.infra.elasticsearch import ElasticsearchCluster
from tests.infra.waiting import wait_until
from webserver.app import create_app

pytestmark = [pytest.mark.elasticsearch, pytest.mark.timeout(300)]


@pytest.fixture
def node(elasticsearch_to_freeze: ElasticsearchCluster) -> ElasticsearchCluster:
    """A node apart from the session's (tests/infra/fixtures.py): freezing it must not stall the
    other tests' node."""
    return elasticsearch_to_freeze


@pytest.fixture
def repositories(node: ElasticsearchCluster, unique_name: str) -> Repositories:
    return connect(node.url, unique_name + "_", request_timeout=2)


def test_reads_fail_fast_while_the_node_is_frozen_and_recover_after(
    node: ElasticsearchCluster, repositories: Repositories, tmp_path: Path
) -> None:
    repositories.executions.save(make_execution("e1"))
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    queue = SqliteQueue(db)
    backends = Backends(
        queue, repositories, LocalStorage(tmp_path / "storage"), Settings(data_dir=tmp_path)
    )
    pid = node.server_pid(1)
    assert pid is not None
    try:
        with TestClient(create_app(backends.settings, backends)) as client:
            assert client.get("/api/v1/executions/e1").status_code == 200
            os.kill(pid, signal.SIGSTOP)
            try:
                with pytest.raises(RepositoryError, match="Elasticsearch unavailable"):
                    repositories.executions.search(ExecutionQuery())
                for path in ("/api/v1/executions/e1", "/api/v1/executions/search"):
                    response = client.get(path)
                    assert response.status_code == 503, response.text
                    assert "Elasticsearch unavailable" in response.json()["message"]
                assert client.get("/health/ready").status_code == 503
            finally:
                os.kill(pid, signal.SIGCONT)

            def answers() -> bool:
                return client.get("/api/v1/executions/e1").status_code == 200

            wait_until(answers, 60, "reads to answer again once the node runs")
            assert client.get("/health/ready").status_code == 200
            found = client.get("/api/v1/executions/search").json()
            assert [e["id"] for e in found["results"]] in ([], ["e1"])  # refreshed or not yet
    finally:
        queue.close()
        db.close()


def test_a_node_killed_in_a_three_node_cluster_costs_no_execution(
    elasticsearch_cluster3: ElasticsearchCluster, unique_name: str
) -> None:
    """Indices with a replica (``ensure_indices`` on three nodes): with the node holding the
    executions' primary killed (-9), every execution stays readable and writes go on, through
    the same repository object (its client skips the dead node)."""
    cluster = elasticsearch_cluster3
    prefix = unique_name + "_"
    repositories = connect(",".join(cluster.urls), prefix, request_timeout=5)
    executions = repositories.executions
    client = executions.store.client  # type: ignore[attr-defined]
    for i in range(50):
        executions.save(make_execution(f"k{i:02d}", sequence=1))
    index = prefix + "executions"
    health = client.cluster.health(index=index, wait_for_status="green", timeout="90s")
    assert health["status"] == "green"
    settings = client.indices.get_settings(index=index)[index]["settings"]["index"]
    assert settings["number_of_replicas"] == "1"

    shards = client.cat.shards(index=index, format="json")
    primary = next(s["node"] for s in shards if s["prirep"] == "p")
    victim = int(primary.removeprefix("node-"))
    cluster.kill_node(victim)

    def all_there() -> bool:
        try:
            client.indices.refresh(index=index)
            found = executions.search(ExecutionQuery(size=100))
            return found.total == 50 and executions.get("main", "k07") is not None
        except RepositoryError:  # re-electing, promoting the replica
            return False

    wait_until(all_there, 120, f"every execution readable without node-{victim}")

    def writes() -> bool:
        try:
            return executions.save(make_execution("k07", state=State.SUCCESS, sequence=2))
        except RepositoryError:
            return False

    wait_until(writes, 60, f"a write accepted without node-{victim}")
    got = executions.get("main", "k07")
    assert got is not None and got.state.current == State.SUCCESS
    cluster.restart_node(victim)
    assert (
        client.cluster.health(index=index, wait_for_status="green", timeout="120s")[
            "number_of_nodes"
        ]
        == 3
    )
