"""The Elasticsearch repository and the webserver's reads while the node is frozen (SIGSTOP):
every read fails with ``RepositoryError`` / 503 naming Elasticsearch, and recovers by itself
once the node runs again."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from common.backends import Backends
from common.errors import RepositoryError
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


@pytest.fixture(scope="module")
def node(infra: object) -> Iterator[ElasticsearchCluster]:
    """A node of the module's own: freezing it must not stall the other tests' node."""
    cluster = infra.elasticsearch(1)  # type: ignore[attr-defined]
    yield cluster
    cluster.stop()


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
