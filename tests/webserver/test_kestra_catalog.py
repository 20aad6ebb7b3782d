"""Kestra's namespaces and plugins endpoints (shapes of Kestra's OpenAPI 2.0.0-SNAPSHOT,
kestra-io/client-sdk ``kestra-ee.yml``: ``PagedResults_Namespace_``, ``Namespace``,
``PagedResults_Plugin_``, ``Plugin.PluginElementMetadata``, ``DocumentationWithSchema``)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

SUB = """\
id: sub
namespace: company.team.sub
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Log
    message: x
"""


def test_namespaces(client: TestClient, hello: dict[str, Any]) -> None:
    client.post("/api/v1/flows", content=SUB, headers={"Content-Type": "application/x-yaml"})
    found = client.get("/api/v1/main/namespaces/search", params={"size": 2})
    assert found.status_code == 200, found.text
    assert found.json() == {
        "results": [{"id": "company", "deleted": False}, {"id": "company.team", "deleted": False}],
        "total": 3,
    }
    existing = client.get("/api/v1/namespaces/search", params={"existing": "true", "q": "sub"})
    assert [n["id"] for n in existing.json()["results"]] == ["company.team.sub"]
    assert client.get("/api/v1/main/namespaces/company").json() == {
        "id": "company",
        "deleted": False,
    }
    assert client.get("/api/v1/main/namespaces/nowhere").status_code == 404
    complete = client.post("/api/v1/main/namespaces/autocomplete", json={"q": "team"})
    assert complete.json() == ["company.team", "company.team.sub"]
    assert client.get("/api/v1/main/namespaces/company/inherited-variables").json() == {}


def test_plugins(client: TestClient) -> None:
    listing = client.get("/api/v1/plugins")
    assert listing.status_code == 200
    body = listing.json()
    assert body["total"] == len(body["results"])
    core = next(p for p in body["results"] if p["group"] == "io.kestra.plugin.core")
    tasks = {t["cls"]: t for t in core["tasks"]}
    assert set(tasks["io.kestra.plugin.core.log.Log"]) == {
        "cls",
        "deprecated",
        "title",
        "description",
    }
    assert "io.kestra.plugin.core.trigger.Schedule" in {t["cls"] for t in core["triggers"]}
    doc = client.get("/api/v1/plugins/io.kestra.plugin.core.log.Log")
    assert doc.status_code == 200
    schema = doc.json()["schema"]
    assert {"properties", "outputs", "definitions"} <= schema.keys()
    assert "message" in schema["properties"]["properties"]
    # a Lanner name finds the same class; an unknown one is 404
    assert client.get("/api/v1/plugins/lanner.core.log.Log").json() == doc.json()
    assert client.get("/api/v1/plugins/io.kestra.plugin.core.nope.Nope").status_code == 404


def test_json_schemas_of_a_flow_a_task_and_a_trigger(client: TestClient) -> None:
    """Kestra's ``GET /plugins/schemas/{type}``: the flow editor's schema; a flow written for
    Kestra validates against it."""
    jsonschema = pytest.importorskip("jsonschema")
    flow = client.get("/api/v1/plugins/schemas/flow")
    assert flow.status_code == 200, flow.text
    schema = flow.json()
    assert schema["$ref"] == "#/definitions/flow"
    definitions = schema["definitions"]
    assert "io.kestra.plugin.core.log.Log" in definitions
    assert {"$ref": "#/definitions/io.kestra.plugin.core.trigger.Schedule"} in definitions[
        "trigger"
    ]["anyOf"]
    good = {
        "id": "hello",
        "namespace": "company.team",
        "tasks": [{"id": "log", "type": "io.kestra.plugin.core.log.Log", "message": "hi"}],
        "triggers": [
            {"id": "daily", "type": "io.kestra.plugin.core.trigger.Schedule", "cron": "@daily"}
        ],
    }
    jsonschema.Draft7Validator(schema).validate(good)
    bad = {**good, "tasks": [{"id": "log", "type": "io.kestra.plugin.core.log.Log", "nope": 1}]}
    assert not jsonschema.Draft7Validator(schema).is_valid(bad)
    tasks = client.get("/api/v1/plugins/schemas/task", params={"arrayOf": "true"}).json()
    assert tasks["type"] == "array" and tasks["items"] == {"$ref": "#/definitions/task"}
    assert client.get("/api/v1/plugins/schemas/dashboard").status_code == 422
