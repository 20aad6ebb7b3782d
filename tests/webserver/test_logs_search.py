"""Logs across executions: ``/logs/search`` (Kestra's) and ``/logs/follow`` (SSE)."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from common.backends import Backends
from tests.webserver.conftest import both_repositories
from tests.webserver.test_live import events, log_entry


@both_repositories
def test_search_filters_pages_and_reports_bad_parameters(
    client: TestClient, backends: Backends
) -> None:
    logs = [log_entry(f"line {i}", execution_id=f"e{i % 2}", at=i) for i in range(5)]
    logs.append(log_entry("it broke", "ERROR", execution_id="e9", at=9))
    backends.repositories.logs.save_many(logs)

    def search(**params: object) -> dict:
        response = client.get("/api/v1/logs/search", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    everything = search()
    assert everything["total"] == 6 and everything["next"] is None
    assert [e["message"] for e in everything["results"]][:2] == ["it broke", "line 4"]
    assert everything["results"][0]["executionId"] == "e9"
    assert [e["message"] for e in search(minLevel="ERROR")["results"]] == ["it broke"]
    assert search(namespace="company", flowId="hello", taskId="log")["total"] == 6
    assert search(namespace="other")["total"] == 0
    assert [e["message"] for e in search(q="BROKE")["results"]] == ["it broke"]
    window = search(startDate="2024-05-01T12:00:01Z", endDate="2024-05-01T12:00:02Z")
    assert [e["message"] for e in window["results"]] == ["line 2", "line 1"]
    first = search(size=4, sort="timestamp:asc")
    assert [e["message"] for e in first["results"]] == [f"line {i}" for i in range(4)]
    rest = search(size=4, sort="timestamp:asc", after=first["next"])
    assert [e["message"] for e in rest["results"]] == ["line 4", "it broke"]
    assert rest["next"] is None

    bad_level = client.get("/api/v1/logs/search", params={"minLevel": "LOUD"})
    assert bad_level.status_code == 422 and bad_level.json()["errors"][0]["path"] == "minLevel"
    bad_cursor = client.get("/api/v1/logs/search", params={"after": "nope"})
    assert bad_cursor.status_code == 400 and bad_cursor.json()["errors"][0]["path"] == "after"
    # an execution's own logs are still where they were
    assert [e["message"] for e in client.get("/api/v1/logs/e9").json()] == ["it broke"]


def test_follow_sends_new_entries_matching_the_search(server: str, backends: Backends) -> None:
    with httpx.Client(base_url=server, timeout=30) as http:
        params = {"namespace": "company", "minLevel": "WARN", "q": "disk"}
        with http.stream("GET", "/api/v1/logs/follow", params=params) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            assert next(lines).startswith(":")  # open: published from now on are sent
            queue = backends.queue
            queue.emit("logs", "e1", log_entry("disk info", "INFO").to_json())  # level
            queue.emit("logs", "e2", log_entry("cpu hot", "WARN").to_json())  # text
            queue.emit("logs", "e3", b"garbage")
            queue.emit("logs", "e4", log_entry("Disk full", "ERROR", execution_id="e4").to_json())
            first = next(events(lines))
    assert (first["message"], first["executionId"]) == ("Disk full", "e4")
