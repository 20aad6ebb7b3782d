"""GET /api/v1/flows/{namespace}/{id}/graph: Kestra's graph shape, nested flowables as clusters."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.webserver.conftest import both_repositories

NESTED = """id: nested
namespace: graph.test
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: left
        type: io.kestra.plugin.core.log.Log
        message: l
      - id: inner
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: deep
            type: io.kestra.plugin.core.log.Log
            message: d
  - id: choose
    type: io.kestra.plugin.core.flow.If
    condition: "{{ true }}"
    then:
      - id: agree
        type: io.kestra.plugin.core.log.Log
        message: y
    else:
      - id: refuse
        type: io.kestra.plugin.core.log.Log
        message: n
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: failed
"""


def _graph(client: TestClient, source: str, path: str) -> dict[str, Any]:
    created = client.post(
        "/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"}
    )
    assert created.status_code == 200, created.text
    response = client.get(path)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _edges(graph: dict[str, Any]) -> set[tuple[str, str, str, str | None]]:
    return {
        (e["source"], e["target"], e["relation"]["relationType"], e["relation"].get("value"))
        for e in graph["edges"]
    }


FLAT = """id: flat
namespace: graph.test
tasks:
  - id: greet
    type: io.kestra.plugin.core.output.OutputValues
    values:
      message: hi
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ outputs.greet.values.message }}"
"""


@both_repositories
def test_a_flat_flow_is_a_chain_from_start_to_end(client: TestClient) -> None:
    graph = _graph(client, FLAT, "/api/v1/flows/graph.test/flat/graph")
    assert _edges(graph) == {
        ("root.start", "greet", "SEQUENTIAL", None),
        ("greet", "log", "SEQUENTIAL", None),
        ("log", "root.end", "SEQUENTIAL", None),
    }
    tasks = {n["uid"]: n for n in graph["nodes"] if n["type"].endswith("GraphTask")}
    assert tasks["greet"]["task"] == {
        "id": "greet",
        "type": "io.kestra.plugin.core.output.OutputValues",
    }
    assert graph["clusters"] == []


def test_nested_flowables_are_clusters_with_their_parents(client: TestClient) -> None:
    graph = _graph(client, NESTED, "/api/v1/flows/graph.test/nested/graph")
    clusters = {c["cluster"]["uid"]: c for c in graph["clusters"]}
    assert set(clusters) == {
        "cluster_root.Triggers",
        "cluster_fan",
        "cluster_inner",
        "cluster_choose",
    }
    assert clusters["cluster_inner"]["parents"] == ["cluster_fan"]
    assert set(clusters["cluster_fan"]["nodes"]) == {
        "fan",
        "fan.end",
        "left",
        "inner",
        "inner.end",
        "deep",
    }
    assert clusters["cluster_choose"]["start"] == "choose"
    assert clusters["cluster_choose"]["end"] == "choose.end"

    edges = _edges(graph)
    assert ("trigger.hourly", "root.start", "SEQUENTIAL", None) in edges
    assert ("first", "fan", "SEQUENTIAL", None) in edges
    assert ("fan", "left", "PARALLEL", None) in edges
    assert ("fan", "inner", "PARALLEL", None) in edges
    assert ("inner", "deep", "SEQUENTIAL", None) in edges
    assert ("fan.end", "choose", "SEQUENTIAL", None) in edges
    assert ("choose", "agree", "CHOICE", "then") in edges
    assert ("choose", "refuse", "CHOICE", "else") in edges
    assert ("choose.end", "root.end", "SEQUENTIAL", None) in edges
    assert ("root.start", "alert", "ERROR", None) in edges


@both_repositories
def test_a_missing_flow_is_a_404_naming_it(client: TestClient) -> None:
    response = client.get("/api/v1/flows/graph.none/ghost/graph")
    assert response.status_code == 404
    assert "graph.none.ghost" in response.json()["message"]
