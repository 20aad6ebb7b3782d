"""``/health/ready``: UP while the repository answers, 503 with the reason when it does not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.webserver.conftest import sqlite_only


@sqlite_only
def test_ready_says_why_the_repository_does_not_answer(client: TestClient, tmp_path: Path) -> None:
    assert client.get("/health/ready").json() == {"status": "UP"}
    conn = sqlite3.connect(tmp_path / "lanner.db", timeout=30)
    try:
        conn.execute("ALTER TABLE repo_executions RENAME TO repo_executions_away")
        conn.commit()
        down = client.get("/health/ready")
        assert down.status_code == 503
        assert down.json()["status"] == "DOWN" and "repo_executions" in down.json()["message"]
        conn.execute("ALTER TABLE repo_executions_away RENAME TO repo_executions")
        conn.commit()
    finally:
        conn.close()
    assert client.get("/health/ready").json() == {"status": "UP"}


@pytest.mark.elasticsearch
def test_reads_answer_503_while_elasticsearch_does_not_answer(
    tmp_path: Path, unique_name: str
) -> None:
    """Reads fail fast with a 503 naming Elasticsearch (never a 500), and health says why."""
    from common.backends import Backends
    from common.queue.sqlite import SqliteDatabase, SqliteQueue
    from common.repository.elasticsearch import connect
    from common.settings import Settings
    from common.storage.local import LocalStorage
    from tests.infra.processes import free_ports
    from webserver.app import create_app

    url = f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    queue = SqliteQueue(db)
    backends = Backends(
        queue=queue,
        repositories=connect(url, unique_name + "_", request_timeout=2),
        storage=LocalStorage(tmp_path / "storage"),
        settings=Settings(data_dir=tmp_path, repository="elasticsearch"),
    )
    app = create_app(backends.settings, backends)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            for path in (
                "/api/v1/executions/search",
                "/api/v1/executions/e1",
                "/api/v1/logs/search",
                "/api/v1/flows/search",
                "/api/v1/triggers/search",
            ):
                response = client.get(path)
                assert response.status_code == 503, (path, response.text)
                assert response.json()["message"].startswith("Elasticsearch unavailable"), path
            ready = client.get("/health/ready")
            assert ready.status_code == 503 and "Elasticsearch unavailable" in ready.text
    finally:
        queue.close()
        db.close()
