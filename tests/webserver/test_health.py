"""``/health/ready``: UP while the repository answers, 503 with the reason when it does not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient


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
