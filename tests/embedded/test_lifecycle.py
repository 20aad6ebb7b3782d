"""Kill, replay and live follow on a real ``lanner server local`` process, through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.embedded import live_server as live

NAMESPACE = "lanner.lifecycle"
FLOWS = [
    f"""\
id: slow
namespace: {NAMESPACE}
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: not reached
""",
    f"""\
id: shell
namespace: {NAMESPACE}
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 60
""",
    f"""\
id: steps
namespace: {NAMESPACE}
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ now() }}}}"
  - id: b
    type: io.kestra.plugin.core.debug.Return
    format: "b after {{{{ outputs.a.value }}}}"
  - id: c
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ outputs.b.value }}}}"
""",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with live.serving(Path(tmp_path_factory.mktemp("lifecycle")), FLOWS) as http:
        yield http


@pytest.mark.parametrize("flow_id", ["slow", "shell"])
def test_kill_stops_the_running_task(client: httpx.Client, flow_id: str) -> None:
    execution_id = live.create(client, NAMESPACE, flow_id)
    live.wait(
        client,
        execution_id,
        "the task to run",
        lambda e: any(t["state"]["current"] == "RUNNING" for t in e.get("taskRunList") or []),
    )
    assert client.delete(f"/api/v1/executions/{execution_id}/kill").status_code == 202
    ended = live.terminal(client, execution_id)
    assert ended["state"]["current"] == "KILLED"
    assert [t["state"]["current"] for t in ended["taskRunList"]] == ["KILLED"]
    # the next task never started, and a killed execution cannot be killed twice into anything
    assert all(t["taskId"] != "never" for t in ended["taskRunList"])


def test_replay_from_a_task_reruns_it_and_what_follows(client: httpx.Client) -> None:
    original_id = live.create(client, NAMESPACE, "steps")
    original = live.terminal(client, original_id)
    assert original["state"]["current"] == "SUCCESS"
    runs = {t["taskId"]: t for t in original["taskRunList"]}
    response = client.post(
        f"/api/v1/executions/{original_id}/replay", params={"taskRunId": runs["b"]["id"]}
    )
    response.raise_for_status()
    replay_id = response.json()["id"]
    assert replay_id != original_id
    replay = live.terminal(client, replay_id)
    assert replay["state"]["current"] == "SUCCESS"
    assert replay["parentId"] == original_id
    replayed = {t["taskId"]: t for t in replay["taskRunList"]}
    # `a` is copied, not run again: same outputs (it renders now()), one attempt
    assert replayed["a"]["outputs"] == runs["a"]["outputs"]
    assert len(replayed["a"]["attempts"]) == 1
    assert replayed["b"]["outputs"]["value"] == f"b after {runs['a']['outputs']['value']}"
    assert replayed["c"]["state"]["current"] == "SUCCESS"
    # the original is untouched
    assert live.get(client, original_id)["taskRunList"] == original["taskRunList"]


def test_follow_streams_until_the_end(client: httpx.Client) -> None:
    execution_id = live.create(client, NAMESPACE, "steps")
    states: list[str] = []
    with client.stream("GET", f"/api/v1/executions/{execution_id}/follow", timeout=30) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                states.append(json.loads(line[5:])["state"]["current"])
                if states[-1] in live.TERMINAL:
                    break
    assert states and states[-1] == "SUCCESS"


SECRET_FLOW = f"""\
id: secret
namespace: {NAMESPACE}
inputs:
  - id: password
    type: SECRET
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "the password is {{{{ inputs.password }}}}"
  - id: echo
    type: io.kestra.plugin.scripts.shell.Commands
    env:
      PASSWORD: "{{{{ inputs.password }}}}"
    commands:
      - 'test "$PASSWORD" = "hunter2-secret" && echo "checked $PASSWORD"'
  - id: out
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.password }}}}"
"""


def test_secret_inputs_never_reach_logs_or_api(client: httpx.Client) -> None:
    client.post(
        "/api/v1/flows", content=SECRET_FLOW, headers={"content-type": "application/x-yaml"}
    ).raise_for_status()
    response = client.post(
        f"/api/v1/executions/{NAMESPACE}/secret", files={"password": (None, "hunter2-secret")}
    )
    response.raise_for_status()
    assert "hunter2" not in response.text
    execution_id = response.json()["id"]
    ended = live.terminal(client, execution_id)
    # the task saw the real value (the shell test passed) ...
    assert ended["state"]["current"] == "SUCCESS", ended
    logs = client.get(f"/api/v1/logs/{execution_id}").text
    # ... but neither the execution, its outputs nor its logs show it
    assert "hunter2" not in json.dumps(ended)
    assert "hunter2" not in logs
    assert "the password is ********" in logs and "checked ********" in logs
    assert ended["inputs"]["password"] == "********"  # stored encrypted, shown masked
