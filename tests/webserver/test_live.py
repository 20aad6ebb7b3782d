"""Live views (SSE) on a real HTTP server, and the logs API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from common.backends import Backends
from common.models.messages import LogEntry
from common.models.state import State
from tests.contracts.repository import make_execution
from tests.webserver.conftest import both_repositories

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


def log_entry(message: str, level: str = "INFO", execution_id: str = "e1", at: int = 0) -> LogEntry:
    return LogEntry(
        namespace="company.team",
        flow_id="hello",
        execution_id=execution_id,
        task_id="log",
        task_run_id="tr1",
        timestamp=T0 + timedelta(seconds=at),
        level=level,  # type: ignore[arg-type]
        message=message,
    )


def test_follow_streams_snapshots_until_terminal(server: str, backends: Backends) -> None:
    backends.repositories.executions.save(make_execution("e1", state=State.RUNNING, sequence=1))
    with httpx.Client(base_url=server, timeout=30) as http:
        with http.stream("GET", "/api/v1/executions/e1/follow") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response.iter_lines())
            first = next(stream)
            assert first["id"] == "e1" and first["state"]["current"] == "RUNNING"
            # the follower is subscribed once the first event is out
            queue = backends.queue
            queue.emit("executions", "other", make_execution("other", sequence=9).to_json())
            queue.emit("executions", "e1", make_execution("e1", sequence=0).to_json())  # older
            queue.emit("executions", "e1", b"garbage")
            queue.emit(
                "executions", "e1", make_execution("e1", state=State.RUNNING, sequence=2).to_json()
            )
            queue.emit(
                "executions", "e1", make_execution("e1", state=State.SUCCESS, sequence=3).to_json()
            )
            rest = list(stream)  # ends by itself at the terminal state
    assert [(e["id"], e["sequence"], e["state"]["current"]) for e in rest] == [
        ("e1", 2, "RUNNING"),
        ("e1", 3, "SUCCESS"),
    ]


@both_repositories
def test_follow_terminal_and_unknown(server: str, backends: Backends) -> None:
    backends.repositories.executions.save(make_execution("done", state=State.FAILED))
    with httpx.Client(base_url=server, timeout=30) as http:
        with http.stream("GET", "/api/v1/executions/done/follow") as response:
            assert [e["state"]["current"] for e in events(response.iter_lines())] == ["FAILED"]
        missing = http.get("/api/v1/executions/nope/follow")
        assert missing.status_code == 404 and "not found" in missing.json()["message"]


def test_follow_logs(server: str, backends: Backends) -> None:
    backends.repositories.executions.save(make_execution("e1", state=State.RUNNING))
    backends.repositories.logs.save_many([log_entry("stored", at=0)])
    with httpx.Client(base_url=server, timeout=30) as http:
        with http.stream("GET", "/api/v1/logs/e1/follow") as response:
            stream = events(response.iter_lines())
            assert next(stream)["message"] == "stored"
            backends.queue.emit("logs", "e2", log_entry("other", execution_id="e2").to_json())
            backends.queue.emit("logs", "e1", log_entry("live", at=1).to_json())
            assert next(stream)["message"] == "live"
            backends.repositories.executions.save(
                make_execution("e1", state=State.SUCCESS, sequence=5)
            )
            assert list(stream) == []  # ends once the execution is over


@both_repositories
def test_logs_search_and_download(client: TestClient, backends: Backends) -> None:
    backends.repositories.logs.save_many(
        [log_entry("a", "DEBUG", at=0), log_entry("b", "WARN", at=1), log_entry("c", "ERROR", at=2)]
    )
    all_logs = client.get("/api/v1/logs/e1").json()
    assert [entry["message"] for entry in all_logs] == ["a", "b", "c"]
    warn = client.get("/api/v1/logs/e1", params={"minLevel": "WARN"}).json()
    assert [entry["level"] for entry in warn] == ["WARN", "ERROR"]
    assert client.get("/api/v1/logs/e1", params={"taskRunId": "zz"}).json() == []
    bad = client.get("/api/v1/logs/e1", params={"minLevel": "LOUD"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "minLevel"
    text = client.get("/api/v1/logs/e1/download")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.text.splitlines()[1].endswith("WARN  [log] b")


@both_repositories
def test_workers_and_daily_stats(client: TestClient, backends: Backends) -> None:
    from common.models.messages import WorkerHeartbeat

    backends.repositories.workers.save(
        WorkerHeartbeat(worker_id="w1", hostname="h", threads=4, running=1, date=T0)
    )
    assert [w["workerId"] for w in client.get("/api/v1/workers").json()] == ["w1"]
    backends.repositories.executions.save(make_execution("s1", state=State.SUCCESS))
    backends.repositories.executions.save(make_execution("s2", state=State.FAILED))
    stats = client.get(
        "/api/v1/stats/executions/daily",
        params={"startDate": "2024-04-30T00:00:00Z", "endDate": "2024-05-02T00:00:00Z"},
    ).json()
    assert [d["startDate"] for d in stats] == ["2024-04-30", "2024-05-01", "2024-05-02"]
    assert stats[1]["executionCounts"] == {"SUCCESS": 1, "FAILED": 1}
    assert stats[1]["duration"]["avg"] == 5.0
    assert stats[0]["executionCounts"] == {} and stats[0]["duration"]["count"] == 0
    backwards = client.get(
        "/api/v1/stats/executions/daily",
        params={"startDate": "2024-05-02T00:00:00Z", "endDate": "2024-05-01T00:00:00Z"},
    )
    assert backwards.status_code == 400
    assert backwards.json()["errors"][0]["path"] == "endDate"
    too_long = client.get("/api/v1/stats/executions/daily", params={"startDate": "1900-01-01"})
    assert too_long.status_code == 400
    assert too_long.json()["errors"][0]["path"] == "startDate"
