"""Executions API: what it writes to the queue and reads from the repository."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from common.backends import Backends
from common.models.execution import StateEntry, StateInfo, TaskRun
from common.models.messages import Kill, NewExecution, Restart, Resume
from common.models.state import State
from tests.contracts.repository import make_execution
from tests.webserver.conftest import both_repositories, executor_inputs

URL = "/api/v1/executions/company.team/hello"


def test_create_with_form_inputs(
    client: TestClient, backends: Backends, hello: dict[str, Any]
) -> None:
    response = client.post(
        URL,
        data={"name": "Ada", "count": "3", "ignored": "x"},
        params=[("labels", "env:prod"), ("labels", "team:ops")],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"]["current"] == "CREATED"
    assert body["inputs"] == {"name": "Ada", "count": 3, "data": None}
    labels = {label["key"]: label["value"] for label in body["labels"]}
    assert labels == {"team": "ops", "env": "prod", "system.correlationId": body["id"]}
    assert body["tenantId"] == "main" and body["flowRevision"] == 1

    (message,) = executor_inputs(backends)
    assert isinstance(message, NewExecution)
    assert message.execution_id == body["id"] and message.execution.inputs == body["inputs"]
    # stored right away: a GET just after works
    got = client.get(f"/api/v1/executions/{body['id']}")
    assert got.status_code == 200 and got.json()["id"] == body["id"]


@both_repositories
def test_create_with_json_and_defaults(client: TestClient, hello: dict[str, Any]) -> None:
    response = client.post(URL, json={"count": 5})
    assert response.status_code == 200
    assert response.json()["inputs"] == {"name": "world", "count": 5, "data": None}
    assert client.post(URL).json()["inputs"]["name"] == "world"


def test_file_input_goes_to_internal_storage(
    client: TestClient, backends: Backends, hello: dict[str, Any]
) -> None:
    response = client.post(URL, files={"data": ("rows.csv", b"a,b\n1,2\n", "text/csv")})
    assert response.status_code == 200, response.text
    body = response.json()
    uri = body["inputs"]["data"]
    expected = f"lanner:///main/company/team/hello/executions/{body['id']}/inputs/data/rows.csv"
    assert uri == expected
    assert backends.storage.get(uri) == b"a,b\n1,2\n"
    download = client.get(f"/api/v1/executions/{body['id']}/file", params={"path": uri})
    assert download.status_code == 200 and download.content == b"a,b\n1,2\n"
    missing = client.get(
        f"/api/v1/executions/{body['id']}/file", params={"path": uri.replace("rows", "none")}
    )
    assert missing.status_code == 404 and "not found" in missing.json()["message"]
    outside = client.get(
        f"/api/v1/executions/{body['id']}/file", params={"path": "lanner://main/other/x"}
    )
    assert outside.status_code == 422 and outside.json()["errors"][0]["path"] == "path"


def test_wrong_input_types_name_the_inputs(
    client: TestClient, backends: Backends, hello: dict[str, Any]
) -> None:
    response = client.post(URL, data={"count": "abc"})
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"path": "inputs.count", "message": "'abc' is not an integer", "line": None}
    ]
    assert executor_inputs(backends) == []
    assert client.get("/health/live").status_code == 200


def test_missing_required_input(client: TestClient) -> None:
    source = (
        "id: needs\nnamespace: n\ninputs:\n  - id: when\n    type: DATE\n"
        "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: x\n"
    )
    client.post("/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"})
    response = client.post("/api/v1/executions/n/needs")
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "path": "inputs.when",
        "message": "missing required input",
        "line": None,
    }


def test_unknown_flow_bad_json_and_bad_labels(client: TestClient, hello: dict[str, Any]) -> None:
    response = client.post("/api/v1/executions/company.team/nope")
    assert response.status_code == 404 and "not found" in response.json()["message"]
    response = client.post(URL, content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["errors"][0]["path"] == "body"
    response = client.post(URL, json=[1, 2])
    assert response.status_code == 422
    response = client.post(URL, params={"labels": "nocolon"})
    assert response.status_code == 422 and response.json()["errors"][0]["path"] == "labels"


def test_disabled_flow(client: TestClient, hello: dict[str, Any]) -> None:
    disabled = hello["source"] + "disabled: true\n"
    client.put(
        "/api/v1/flows/company.team/hello",
        content=disabled,
        headers={"Content-Type": "application/x-yaml"},
    )
    response = client.post(URL)
    assert response.status_code == 422 and "disabled" in response.json()["message"]
    assert response.json()["errors"][0]["path"] == "disabled"


def test_request_validation_names_the_field(client: TestClient) -> None:
    response = client.get("/api/v1/executions/search", params={"page": "zero"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "page"
    response = client.get("/api/v1/executions/search", params={"state": "NOPE"})
    assert response.status_code == 422 and response.json()["errors"][0]["path"] == "state[0]"


@both_repositories
def test_search(client: TestClient, backends: Backends) -> None:
    repo = backends.repositories.executions
    repo.save(make_execution("a", state=State.SUCCESS, labels={"env": "prod"}))
    repo.save(make_execution("b", state=State.FAILED, namespace="company.other"))
    repo.save(make_execution("c", state=State.FAILED, tenant_id="acme"))

    def ids(**params: Any) -> list[str]:
        response = client.get("/api/v1/executions/search", params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["results"]]

    assert sorted(ids()) == ["a", "b"]
    assert ids(state="FAILED") == ["b"]
    assert sorted(ids(state=["FAILED", "SUCCESS"])) == ["a", "b"]
    assert ids(labels="env:prod") == ["a"]
    assert ids(namespace="company.team", flowId="hello") == ["a"]
    assert ids(q="other") == ["b"]
    assert ids(startDate="2030-01-01T00:00:00Z") == []
    assert client.get("/api/v1/acme/executions/search").json()["total"] == 1


@both_repositories
def test_search_pages_follow_the_cursor_and_refuse_deep_numbered_pages(
    client: TestClient, backends: Backends
) -> None:
    for i in range(7):
        backends.repositories.executions.save(make_execution(f"p{i}"))  # one start date: ties
    seen: list[str] = []
    params: dict[str, Any] = {"size": 3}
    while True:
        body = client.get("/api/v1/executions/search", params=params).json()
        assert body["total"] == 7
        seen += [e["id"] for e in body["results"]]
        if body["next"] is None:
            break
        params = {"size": 3, "after": body["next"]}
    assert seen == [f"p{i}" for i in reversed(range(7))]

    deep = client.get("/api/v1/executions/search", params={"size": 1000, "page": 11})
    assert deep.status_code == 400 and deep.json()["errors"][0]["path"] == "page"
    assert "next" in deep.json()["errors"][0]["message"]
    bad = client.get("/api/v1/executions/search", params={"after": "garbage"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "after"


@both_repositories
def test_get_and_delete(client: TestClient, backends: Backends) -> None:
    backends.repositories.executions.save(make_execution("x1"))
    assert client.get("/api/v1/executions/x1").json()["id"] == "x1"
    assert client.get("/api/v1/executions/nope").status_code == 404
    assert client.delete("/api/v1/executions/x1").status_code == 204
    assert client.get("/api/v1/executions/x1").status_code == 404


@both_repositories
def test_kill(client: TestClient, backends: Backends) -> None:
    backends.repositories.executions.save(make_execution("k1", state=State.RUNNING))
    backends.repositories.executions.save(make_execution("k2", state=State.SUCCESS))
    assert client.delete("/api/v1/executions/k1/kill").status_code == 202
    assert client.delete("/api/v1/executions/k2/kill").status_code == 409
    assert client.delete("/api/v1/executions/k3/kill").status_code == 404
    (message,) = executor_inputs(backends)
    assert isinstance(message, Kill) and message.execution_id == "k1"


@both_repositories
def test_restart_follows_kestras_rules(client: TestClient, backends: Backends) -> None:
    """The older ``POST /executions/{id}/restart`` follows the rules of ``actions/restart``
    (``webserver/_orders.restart``, Kestra's ``ExecutionService.restart``, kestra-io/kestra
    @58c1ca2): 409 unless ended or PAUSED, 422 when no task run is FAILED or PAUSED."""
    from tests.webserver.test_kestra_actions import with_runs

    backends.repositories.executions.save(with_runs("r1", State.FAILED, ("t1", "a", State.FAILED)))
    backends.repositories.executions.save(make_execution("r2", state=State.RUNNING))
    backends.repositories.executions.save(make_execution("r3", state=State.SUCCESS))
    restarted = client.post("/api/v1/executions/r1/restart")
    assert restarted.status_code == 200 and restarted.json()["state"]["current"] == "RESTARTED"
    response = client.post("/api/v1/executions/r2/restart")
    assert response.status_code == 409 and "must be terminated" in response.json()["message"]
    nothing = client.post("/api/v1/executions/r3/restart")
    assert nothing.status_code == 422
    assert nothing.json()["message"] == "No task found to restart execution from!"
    (message,) = executor_inputs(backends)
    assert isinstance(message, Restart) and message.execution_id == "r1"


@both_repositories
def test_resume_only_paused(client: TestClient, backends: Backends) -> None:
    backends.repositories.executions.save(make_execution("p1", state=State.PAUSED))
    backends.repositories.executions.save(make_execution("p2", state=State.RUNNING))
    assert client.post("/api/v1/executions/p1/resume", data={"ok": "yes"}).status_code == 200
    assert client.post("/api/v1/executions/p2/resume").status_code == 409
    (message,) = executor_inputs(backends)
    assert isinstance(message, Resume) and message.inputs == {"ok": "yes"}


@both_repositories
def test_replay_from_a_task_run(
    client: TestClient, backends: Backends, hello: dict[str, Any]
) -> None:
    execution = make_execution("old", state=State.FAILED)
    done = StateInfo(
        current=State.SUCCESS,
        histories=[StateEntry(state=State.SUCCESS, date=execution.state.histories[0].date)],
    )
    execution.task_run_list = [
        TaskRun(
            id="t1",
            execution_id="old",
            namespace="company.team",
            flow_id="hello",
            task_id="log",
            state=done,
        ),
        TaskRun(
            id="t2",
            execution_id="old",
            namespace="company.team",
            flow_id="hello",
            task_id="log",
            state=done,
        ),
    ]
    backends.repositories.executions.save(execution)
    response = client.post("/api/v1/executions/old/replay", params={"taskRunId": "t2"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] != "old" and body["parentId"] == "old" and body["originalId"] == "old"
    assert [t["id"] for t in body["taskRunList"]] == ["t1"]
    assert body["taskRunList"][0]["executionId"] == body["id"]
    (message,) = executor_inputs(backends)
    assert isinstance(message, NewExecution) and message.execution.id == body["id"]
    missing = client.post("/api/v1/executions/old/replay", params={"taskRunId": "nope"})
    # Kestra's ``ExecutionService.taskRunToRestart``: IllegalArgumentException, 422 (the rule
    # of ``_orders.replay``, shared with ``actions/replay``)
    assert missing.status_code == 422
    assert missing.json()["message"] == "No task found to restart execution from!"


def test_webhook(client: TestClient, backends: Backends, hello: dict[str, Any]) -> None:
    url = "/api/v1/executions/webhook/company.team/hello/s3cr3t"
    response = client.post(url, json={"a": 1}, params={"p": "v"})
    assert response.status_code == 200, response.text
    trigger = response.json()["trigger"]
    assert trigger["id"] == "hook" and trigger["variables"]["body"] == {"a": 1}
    assert trigger["variables"]["parameters"] == {"p": ["v"]}
    assert "content-type" in trigger["variables"]["headers"]
    text = client.put(url, content=b"plain text")
    assert text.json()["trigger"]["variables"]["body"] == "plain text"
    assert client.get(url).status_code == 200
    assert client.post("/api/v1/executions/webhook/company.team/hello/wrong").status_code == 404
    assert len(executor_inputs(backends)) == 3


def test_unexpected_errors_are_500_json(client: TestClient, backends: Backends) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom with a secret detail")

    backends.repositories.executions.get = broken  # type: ignore[method-assign]
    response = client.get("/api/v1/executions/anything")
    assert response.status_code == 500
    assert "RuntimeError" in response.json()["message"]
    assert "secret" not in response.text and "Traceback" not in response.text
    assert client.get("/health/live").status_code == 200


def test_openapi_health_and_metrics(client: TestClient) -> None:
    assert client.get("/api/docs").status_code == 200
    spec = client.get("/api/openapi.json").json()
    assert "/api/v1/executions/{namespace}/{flow_id}" in spec["paths"]
    assert client.get("/health/ready").json() == {"status": "UP"}
    client.get("/api/v1/executions/nope")
    metrics = client.get("/metrics").text
    assert "lanner_webserver_http_requests_total" in metrics
    assert 'path="/api/v1/executions/{execution_id}"' in metrics
    assert "lanner_webserver_http_request_duration_seconds_bucket" in metrics


TEMPLATED_KEYS = """\
id: templated
namespace: company.team
variables:
  secret: s3cr3t
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.body }}"
triggers:
  - id: by_id
    type: io.kestra.plugin.core.trigger.Webhook
    key: "{{ flow.id }}"
  - id: by_vars
    type: io.kestra.plugin.core.trigger.Webhook
    key: "{{ vars.secret }}-{{ flow.namespace }}"
  - id: broken
    type: io.kestra.plugin.core.trigger.Webhook
    key: "{{ nothing.here }}"
"""


def test_webhook_key_is_rendered_with_the_flow_variables(
    client: TestClient, backends: Backends
) -> None:
    created = client.post(
        "/api/v1/flows", content=TEMPLATED_KEYS, headers={"Content-Type": "application/x-yaml"}
    )
    assert created.status_code == 200, created.text
    base = "/api/v1/executions/webhook/company.team/templated"
    by_id = client.post(f"{base}/templated", json={"a": 1})
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["trigger"]["id"] == "by_id"
    by_vars = client.post(f"{base}/s3cr3t-company.team")
    assert by_vars.status_code == 200, by_vars.text
    assert by_vars.json()["trigger"]["id"] == "by_vars"
    # the template itself is not a key, and a key that cannot render matches nothing
    assert client.post(f"{base}/{{{{ flow.id }}}}").status_code == 404
    assert client.post(f"{base}/wrong").status_code == 404
    assert len(executor_inputs(backends)) == 2
