"""A Pause whose delay is a template, on a real ``lanner server local`` process, through the API.

Before typed properties accepted templates, the executor raised on this flow for every batch
and the execution stayed CREATED.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.infra.waiting import wait_until

NAMESPACE = "lanner.dynamic"
FLOW = f"""\
id: pause_delay
namespace: {NAMESPACE}
inputs:
  - id: delay
    type: DURATION
  - id: tolerated
    type: STRING
    defaults: PT0.1S
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    delay: "{{{{ inputs.delay }}}}"
  - id: bad
    type: io.kestra.plugin.core.flow.Pause
    delay: "{{{{ inputs.tolerated }}}}"
    allowFailure: true
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "resumed after {{{{ inputs.delay }}}}"
"""
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = LocalServer(Path(tmp_path_factory.mktemp("dynamic")))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            http.post(
                "/api/v1/flows", content=FLOW, headers={"content-type": "application/x-yaml"}
            ).raise_for_status()
            yield http
    finally:
        server.stop()


def _run(client: httpx.Client, inputs: dict[str, str]) -> dict[str, Any]:
    response = client.post(f"/api/v1/executions/{NAMESPACE}/pause_delay", data=inputs)
    response.raise_for_status()
    execution_id = response.json()["id"]
    found: dict[str, Any] = {}

    def ended() -> bool:
        got = client.get(f"/api/v1/executions/{execution_id}")
        got.raise_for_status()
        found.update(got.json())
        return found["state"]["current"] in TERMINAL

    wait_until(ended, 30, f"execution {execution_id} to end")
    return found


def _task_states(execution: dict[str, Any]) -> dict[str, str]:
    return {t["taskId"]: t["state"]["current"] for t in execution["taskRunList"]}


def test_pause_delay_template_runs_to_success(client: httpx.Client) -> None:
    execution = _run(client, {"delay": "PT0.5S"})
    assert execution["state"]["current"] == "SUCCESS", execution
    assert _task_states(execution) == {"pause": "SUCCESS", "bad": "SUCCESS", "after": "SUCCESS"}


def test_invalid_rendered_delay_fails_only_its_task_run(client: httpx.Client) -> None:
    execution = _run(client, {"delay": "PT0.1S", "tolerated": "abc"})
    assert _task_states(execution) == {"pause": "SUCCESS", "bad": "WARNING", "after": "SUCCESS"}
    assert execution["state"]["current"] == "WARNING"

    def logged() -> list[str]:
        response = client.get(f"/api/v1/logs/{execution['id']}", params={"taskId": "bad"})
        response.raise_for_status()
        messages = [str(entry["message"]) for entry in response.json()]
        return [m for m in messages if "delay: 'abc' is not a duration" in m]

    wait_until(logged, 30, "the task run's error log naming the property")
