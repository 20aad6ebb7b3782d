"""Templates and secrets through real executions on a ``lanner server local`` process (embedded
backend), read back through the API.

* SSTI payloads given as an execution input that a task renders (``render(inputs.payload)``, the
  Kestra pattern that makes user input a template): each execution ends SUCCESS with a harmless
  value or FAILED with a clean error in its logs, and the server keeps serving.
* SECRET inputs are stored encrypted and shown as ``********`` in execution answers (get,
  search, follow, actions); their value is masked in logs and outputs like ``secret()``'s.
* ``secret()`` values (Kestra: ``RunContextLogger`` masks secrets in task logs) appear as
  ``********`` in task logs, outputs (a Return task, a script's ``::{"outputs"}::`` line), the
  failure message of a task, and every execution API answer; never in clear.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.infra.waiting import wait_until
from tests.security.test_ssti import INTERNALS

NAMESPACE = "lanner.security"
TOKEN = "tok-3d1f9a-very-secret"
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"}
EXECUTED = {"payloads": 0}  # the conftest prints it

FLOWS = [
    f"""\
id: inject
namespace: {NAMESPACE}
inputs:
  - id: payload
    type: STRING
tasks:
  - id: rendered
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ render(inputs.payload) }}}}"
""",
    f"""\
id: secrets
namespace: {NAMESPACE}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "token={{{{ secret('SSTI_TOKEN') }}}}"
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ secret('SSTI_TOKEN') }}}}-suffix"
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      TOKEN: "{{{{ secret('SSTI_TOKEN') }}}}"
    commands:
      - echo "shell saw $TOKEN"
      - echo '::{{"outputs":{{"leak":"'"$TOKEN"'"}}}}::'
""",
    f"""\
id: secretfail
namespace: {NAMESPACE}
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "failed with {{{{ secret('SSTI_TOKEN') }}}}"
""",
]

SECRET_INPUT_FLOW = f"""\
id: secretinput
namespace: {NAMESPACE}
inputs:
  - id: password
    type: SECRET
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "pw={{{{ inputs.password }}}}"
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.password }}}}"
"""
FLOWS.append(SECRET_INPUT_FLOW)

PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ ''|attr('__class__') }}",
    "{{ {} | jq('$ENV') }}",
    "{{ 'a' * 1000000000 }}",
    "{{ range(1, 1000000000) }}",
    "{% for i in range(1, 100000) %}{% for j in range(1, 100000) %}{% endfor %}{% endfor %}",
    "{% include '/etc/passwd' %}",
    "{{ secret('SSTI_TOKEN') }}",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    os.environ["SECRET_SSTI_TOKEN"] = base64.b64encode(TOKEN.encode()).decode()
    server = LocalServer(Path(tmp_path_factory.mktemp("security")))
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for source in FLOWS:
                http.post(
                    "/api/v1/flows", content=source, headers={"content-type": "application/x-yaml"}
                ).raise_for_status()
            yield http
    finally:
        server.stop()
        os.environ.pop("SECRET_SSTI_TOKEN", None)


def _run(client: httpx.Client, flow_id: str, **inputs: str) -> dict[str, Any]:
    files = {k: (None, v) for k, v in inputs.items()} or None
    response = client.post(f"/api/v1/executions/{NAMESPACE}/{flow_id}", files=files)
    response.raise_for_status()
    execution_id = response.json()["id"]
    found: dict[str, Any] = {}

    def ended() -> bool:
        found.update(client.get(f"/api/v1/executions/{execution_id}").json())
        return found.get("state", {}).get("current") in TERMINAL

    wait_until(ended, 60, f"execution {execution_id} to end")
    return found


def _logs(client: httpx.Client, execution_id: str) -> str:
    return client.get(f"/api/v1/logs/{execution_id}").text


def test_injected_templates_end_cleanly(client: httpx.Client) -> None:
    for payload in PAYLOADS:
        execution = _run(client, "inject", payload=payload)
        EXECUTED["payloads"] += 1
        logs = _logs(client, execution["id"])
        answer = json.dumps(execution)
        for marker in INTERNALS:
            assert marker not in answer and marker not in logs, (payload, marker)
        assert TOKEN not in answer and TOKEN not in logs, payload
        if execution["state"]["current"] == "FAILED":
            assert "Unable to render" in logs, (payload, logs[:500])
        else:
            assert execution["state"]["current"] == "SUCCESS", execution
    assert client.get("/health/ready").status_code == 200
    assert _run(client, "inject", payload="plain {{ 1 + 1 }}")["state"]["current"] == "SUCCESS"


def test_secret_values_are_masked_in_logs_outputs_and_answers(client: httpx.Client) -> None:
    execution = _run(client, "secrets")
    assert execution["state"]["current"] == "SUCCESS", execution
    logs = _logs(client, execution["id"])
    assert "token=********" in logs and "shell saw ********" in logs
    outputs = {run["taskId"]: run.get("outputs") for run in execution["taskRunList"]}
    assert outputs["ret"] == {"value": "********-suffix"}
    assert outputs["sh"]["vars"]["leak"] == "********"
    answers = [
        json.dumps(execution),
        logs,
        client.get(f"/api/v1/logs/{execution['id']}/download").text,
        client.get("/api/v1/executions/search", params={"namespace": NAMESPACE}).text,
        client.get("/api/v1/logs/search", params={"namespace": NAMESPACE}).text,
    ]
    for answer in answers:
        assert TOKEN not in answer


def test_a_secret_in_a_failure_message_is_masked(client: httpx.Client) -> None:
    execution = _run(client, "secretfail")
    assert execution["state"]["current"] == "FAILED"
    logs = _logs(client, execution["id"])
    assert "failed with ********" in logs
    assert TOKEN not in logs and TOKEN not in json.dumps(execution)


def test_secret_inputs_are_masked_in_every_answer(client: httpx.Client) -> None:
    execution = _run(client, "secretinput", password=TOKEN)
    assert execution["state"]["current"] == "SUCCESS", execution
    assert execution["inputs"] == {"password": "********"}
    outputs = {run["taskId"]: run.get("outputs") for run in execution["taskRunList"]}
    assert outputs["ret"] == {"value": "********"}
    assert "pw=********" in _logs(client, execution["id"])
    search = client.get("/api/v1/executions/search", params={"flowId": "secretinput"}).json()
    assert [e["inputs"] for e in search["results"]] == [{"password": "********"}]
    assert TOKEN not in json.dumps(search)
