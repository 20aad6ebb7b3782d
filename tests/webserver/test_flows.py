"""Flows API: CRUD, revisions, validation, and bad sources answered with located problems."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from common.backends import Backends
from tests.webserver.conftest import HELLO, both_repositories, flow_events

YAML = {"Content-Type": "application/x-yaml"}


def post_flow(client: TestClient, source: str, tenant: str | None = None) -> Any:
    prefix = f"/api/v1/{tenant}" if tenant else "/api/v1"
    return client.post(f"{prefix}/flows", content=source, headers=YAML)


@both_repositories
def test_create_get_and_announce(
    client: TestClient, backends: Backends, hello: dict[str, Any]
) -> None:
    assert hello["id"] == "hello" and hello["namespace"] == "company.team"
    assert hello["revision"] == 1 and hello["source"] == HELLO
    assert hello["tasks"][0]["id"] == "log"
    got = client.get("/api/v1/flows/company.team/hello", params={"source": "true"})
    assert got.status_code == 200 and got.json()["source"] == HELLO
    events = flow_events(backends)
    assert events == [
        {
            "source": HELLO,
            "revision": 1,
            "tenant": "main",
            "namespace": "company.team",
            "id": "hello",
            "deleted": False,
        }
    ]


@both_repositories
def test_create_twice_is_a_conflict(client: TestClient, hello: dict[str, Any]) -> None:
    response = post_flow(client, HELLO)
    assert response.status_code == 409
    assert "already exists" in response.json()["message"]


@both_repositories
def test_update_makes_revisions(
    client: TestClient, backends: Backends, hello: dict[str, Any]
) -> None:
    changed = HELLO.replace("team: data", "team: ops")
    response = client.put("/api/v1/flows/company.team/hello", content=changed, headers=YAML)
    assert response.status_code == 200 and response.json()["revision"] == 2
    same = client.put("/api/v1/flows/company.team/hello", content=changed, headers=YAML)
    assert same.json()["revision"] == 2
    revisions = client.get("/api/v1/flows/company.team/hello/revisions").json()
    assert [r["revision"] for r in revisions] == [1, 2]
    old = client.get("/api/v1/flows/company.team/hello", params={"revision": 1}).json()
    assert old["labels"] == {"team": "data"}
    assert [e["revision"] for e in flow_events(backends)] == [1, 2]


@both_repositories
def test_update_unknown_flow_and_mismatched_id(client: TestClient, hello: dict[str, Any]) -> None:
    other = HELLO.replace("id: hello", "id: other")
    response = client.put("/api/v1/flows/company.team/other", content=other, headers=YAML)
    assert response.status_code == 404
    response = client.put("/api/v1/flows/company.team/hello", content=other, headers=YAML)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "id"


@both_repositories
def test_delete(client: TestClient, backends: Backends, hello: dict[str, Any]) -> None:
    assert client.delete("/api/v1/flows/company.team/hello").status_code == 204
    assert client.get("/api/v1/flows/company.team/hello").status_code == 404
    assert client.delete("/api/v1/flows/company.team/hello").status_code == 404
    assert flow_events(backends)[-1]["deleted"] is True


@both_repositories
def test_search_and_namespace_listing(client: TestClient, hello: dict[str, Any]) -> None:
    post_flow(
        client, HELLO.replace("company.team", "company.team.sub").replace("id: hello", "id: b")
    )
    post_flow(client, HELLO.replace("company.team", "other"))
    found = client.get("/api/v1/flows/search", params={"namespace": "company"}).json()
    assert found["total"] == 2
    assert [f["id"] for f in found["results"]] == ["hello", "b"]
    assert client.get("/api/v1/flows/search", params={"q": "hel"}).json()["total"] == 2
    assert len(client.get("/api/v1/flows/other").json()) == 1


@both_repositories
def test_tenants_are_separate(client: TestClient, hello: dict[str, Any]) -> None:
    assert client.get("/api/v1/main/flows/company.team/hello").status_code == 200
    assert client.get("/api/v1/acme/flows/company.team/hello").status_code == 404
    assert post_flow(client, HELLO, tenant="acme").status_code == 200
    assert client.get("/api/v1/acme/flows/company.team/hello").json()["tenantId"] == "acme"


def test_invalid_yaml_is_located(client: TestClient) -> None:
    response = post_flow(client, "id: x\nnamespace: n\ntasks:\n  - id: [unclosed\n")
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["message"].startswith("invalid YAML")
    assert body["errors"][0]["line"] is not None
    assert client.get("/health/live").status_code == 200


def test_unknown_task_type(client: TestClient) -> None:
    source = "id: x\nnamespace: n\ntasks:\n  - id: a\n    type: io.kestra.Nope\n"
    response = post_flow(client, source)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["path"] == "tasks[0]" and "unknown task type" in error["message"]
    assert error["line"] == 4


def test_missing_and_duplicate_ids(client: TestClient) -> None:
    missing = "namespace: n\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
    response = post_flow(client, missing)
    assert response.status_code == 422
    assert {"path": "id", "message": "missing required property", "line": 1} in response.json()[
        "errors"
    ]
    duplicate = (
        "id: x\nnamespace: n\ntasks:\n"
        "  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: one\n"
        "  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: two\n"
    )
    response = post_flow(client, duplicate)
    assert response.status_code == 422
    assert "duplicate task id" in response.json()["message"]


def test_empty_and_binary_bodies(client: TestClient) -> None:
    assert post_flow(client, "").status_code == 422
    response = client.post("/api/v1/flows", content=b"\xff\xfe\x00", headers=YAML)
    assert response.status_code == 422 and "UTF-8" in response.json()["message"]


def test_validate_several_documents(client: TestClient) -> None:
    body = HELLO + "---\nid: broken\nnamespace: n\ntasks:\n  - id: a\n    type: nope.Nope\n"
    response = client.post("/api/v1/flows/validate", content=body, headers=YAML)
    assert response.status_code == 200
    first, second = response.json()
    assert first["flow"] == "hello" and "constraints" not in first
    assert second["flow"] == "broken" and "unknown task type" in second["constraints"]
    hello_lines = HELLO.count("\n")
    assert second["errors"][0]["line"] == hello_lines + 5


def test_template_syntax_error_is_located(client: TestClient) -> None:
    source = (
        "id: x\nnamespace: n\ntasks:\n"
        "  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
        '    message: "{{ outputs.a.value "\n'
    )
    response = client.post("/api/v1/flows/validate", content=source, headers=YAML)
    assert response.status_code == 200
    constraints = response.json()[0]["constraints"]
    assert "tasks[0].message" in constraints and "6" in constraints
    assert "invalid template" in constraints
    response = post_flow(client, source)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["path"] == "tasks[0].message" and error["line"] == 6
    assert "invalid template" in error["message"]
    assert client.get("/health/live").status_code == 200


def test_dag_cycle_is_refused(client: TestClient) -> None:
    source = (
        "id: x\nnamespace: n\ntasks:\n"
        "  - id: dag\n    type: io.kestra.plugin.core.flow.Dag\n    tasks:\n"
        "      - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}\n"
        "        dependsOn: [b]\n"
        "      - task: {id: b, type: io.kestra.plugin.core.log.Log, message: b}\n"
        "        dependsOn: [a]\n"
    )
    response = post_flow(client, source)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["path"] == "tasks[0]" and "cycle: a -> b -> a" in error["message"]
    assert client.get("/health/live").status_code == 200


def test_a_worker_group_key_must_be_a_topic_name(client: TestClient) -> None:
    source = (
        "id: x\nnamespace: n\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: hi\n    workerGroup:\n      key: gpu/big\n"
    )
    response = post_flow(client, source)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["path"] == "tasks[0].workerGroup.key", error
    assert error["line"] == 8
    assert post_flow(client, source.replace("gpu/big", "gpu-big.eu")).status_code == 200
