"""Webhook trigger: request variables, conditions, disabled flow or trigger, bad bodies."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from common.backends import Backends
from common.models.messages import NewExecution
from common.models.trigger import TriggerState
from tests.webserver.conftest import executor_inputs

HOOKS = """\
id: hooks
namespace: company.team
inputs:
  - id: who
    type: STRING
    defaults: nobody
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.body }}"
triggers:
  - id: open
    type: io.kestra.plugin.core.trigger.Webhook
    key: open-key
    inputs:
      who: "{{ trigger.body.name ?? trigger.parameters.name[0] }}"
  - id: guarded
    type: io.kestra.plugin.core.trigger.Webhook
    key: guarded-key
    conditions:
      - type: io.kestra.plugin.core.condition.ExpressionCondition
        expression: "{{ trigger.body.hello == 'world' }}"
  - id: closed
    type: io.kestra.plugin.core.trigger.Webhook
    key: closed-key
    disabled: true
  - id: broken
    type: io.kestra.plugin.core.trigger.Webhook
    key: broken-key
    inputs:
      who: "{{ nothing.there }}"
"""

BASE = "/api/v1/executions/webhook/company.team/hooks"


def deploy(client: TestClient, source: str = HOOKS) -> None:
    response = client.post(
        "/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"}
    )
    assert response.status_code == 200, response.text


def created(backends: Backends) -> list[NewExecution]:
    return [m for m in executor_inputs(backends) if isinstance(m, NewExecution)]


def test_body_headers_and_parameters_are_trigger_variables(
    client: TestClient, backends: Backends
) -> None:
    deploy(client)
    for method in ("GET", "POST", "PUT"):
        response = client.request(
            method,
            f"{BASE}/open-key",
            params={"name": "param", "many": ["a", "b"]},
            headers={"X-Token": "t1"},
            json={"name": "body"} if method != "GET" else None,
        )
        assert response.status_code == 200, (method, response.text)
        answer = response.json()
        variables = answer["trigger"]["variables"]
        assert answer["id"] and answer["trigger"]["id"] == "open"
        assert variables["parameters"] == {"name": ["param"], "many": ["a", "b"]}
        assert variables["headers"]["x-token"] == ["t1"]
        expected = "param" if method == "GET" else "body"
        assert answer["inputs"] == {"who": expected}
        if method != "GET":
            assert variables["body"] == {"name": "body"}
    assert [m.execution.id for m in created(backends)] == [
        m.execution_id for m in created(backends)
    ]
    assert len(created(backends)) == 3


def test_conditions_refuse_with_204_and_create_nothing(
    client: TestClient, backends: Backends
) -> None:
    deploy(client)
    refused = client.post(f"{BASE}/guarded-key", json={"hello": "moon"})
    assert refused.status_code == 204 and refused.content == b""
    assert created(backends) == []
    accepted = client.post(f"{BASE}/guarded-key", json={"hello": "world"})
    assert accepted.status_code == 200, accepted.text
    assert len(created(backends)) == 1


def test_bad_requests_are_4xx_and_never_500(client: TestClient, backends: Backends) -> None:
    deploy(client)
    unknown_flow = client.post("/api/v1/executions/webhook/company.team/nope/open-key")
    assert unknown_flow.status_code == 404
    assert "Flow not found" in unknown_flow.json()["message"]
    assert client.post(f"{BASE}/wrong-key").status_code == 404
    closed = client.post(f"{BASE}/closed-key", json={})
    assert closed.status_code == 409 and "disabled" in closed.json()["message"]
    not_json = client.post(
        f"{BASE}/open-key", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["errors"][0]["path"] == "body"
    assert "not JSON" in not_json.json()["message"]
    # text declared as text is a string body
    text = client.post(
        f"{BASE}/open-key",
        params={"name": "p"},
        content=b"{plain",
        headers={"Content-Type": "text/plain"},
    )
    assert text.status_code == 200 and text.json()["trigger"]["variables"]["body"] == "{plain"
    broken = client.post(f"{BASE}/broken-key")
    assert broken.status_code == 422 and "inputs" in broken.json()["errors"][0]["path"]
    assert len(created(backends)) == 1


def test_a_trigger_disabled_through_the_api_or_a_disabled_flow_is_refused(
    client: TestClient, backends: Backends
) -> None:
    deploy(client)
    backends.repositories.triggers.save_many(
        [
            TriggerState(
                namespace="company.team",
                flow_id="hooks",
                trigger_id="open",
                disabled=True,
                date=datetime.now(UTC),
            )
        ]
    )
    refused = client.post(f"{BASE}/open-key")
    assert refused.status_code == 409 and "through the API" in refused.json()["message"]
    deploy_disabled = client.put(
        "/api/v1/flows/company.team/hooks",
        content=HOOKS + "disabled: true\n",
        headers={"Content-Type": "application/x-yaml"},
    )
    assert deploy_disabled.status_code == 200, deploy_disabled.text
    flow_off = client.post(f"{BASE}/guarded-key", json={"hello": "world"})
    assert flow_off.status_code == 409 and "flow company.team.hooks is disabled" in flow_off.text
    assert created(backends) == []
