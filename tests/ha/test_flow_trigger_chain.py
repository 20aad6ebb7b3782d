"""A chain of Flow triggers, on both backends through the API: A ends, B starts with A's
outputs, and C waits for both A and B within a time window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.infra.deployment import KafkaDeployment
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.timeout(300)]

NS = "lanner.chain"
A = f"""\
id: a
namespace: {NS}
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: "made by {{{{ execution.id }}}}"
outputs:
  - id: made
    type: STRING
    value: "{{{{ outputs.make.value }}}}"
"""
B = f"""\
id: b
namespace: {NS}
inputs:
  - id: got
    type: STRING
tasks:
  - id: use
    type: io.kestra.plugin.core.debug.Return
    format: "b used {{{{ inputs.got }}}}"
triggers:
  - id: after-a
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      got: "{{{{ trigger.outputs.made }}}}"
    preconditions:
      id: a-succeeded
      flows:
        - namespace: {NS}
          flowId: a
          states: [SUCCESS]
"""
C = f"""\
id: c
namespace: {NS}
tasks:
  - id: both
    type: io.kestra.plugin.core.debug.Return
    format: "after a and b"
triggers:
  - id: after-a-and-b
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: a-and-b
      timeWindow:
        type: SLIDING_WINDOW
        window: PT10M
      flows:
        - namespace: {NS}
          flowId: a
          states: [SUCCESS]
        - namespace: {NS}
          flowId: b
          states: [SUCCESS]
"""


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a Lanner API on the backend the test is parametrised with."""
    if request.param == "embedded":
        server = LocalServer(tmp_path / "embedded")
        server.start()
        yield server.url
        server.stop()
        return
    servers = request.getfixturevalue("kafka_bootstrap_servers")
    prefix = request.getfixturevalue("unique_name") + "."
    deployment = KafkaDeployment(servers, prefix, tmp_path / "kafka").start()
    yield deployment.url
    deployment.stop()


def _executions(client: httpx.Client, flow_id: str) -> list[dict[str, Any]]:
    params = {"namespace": NS, "flowId": flow_id, "size": 100}
    response = client.get("/api/v1/main/executions/search", params=params)
    response.raise_for_status()
    return list(response.json()["results"])


def test_a_then_b_with_its_outputs_then_c_after_both(api: str) -> None:
    with httpx.Client(base_url=api, timeout=30) as client:
        for source in (A, B, C):
            response = client.post(
                "/api/v1/main/flows", content=source, headers={"content-type": "application/x-yaml"}
            )
            assert response.status_code == 200, response.text
        created = client.post(f"/api/v1/main/executions/{NS}/a")
        assert created.status_code == 200, created.text
        a_id = created.json()["id"]

        def ended(flow_id: str) -> list[dict[str, Any]]:
            return [
                e
                for e in _executions(client, flow_id)
                if e["state"]["current"] in ("SUCCESS", "FAILED", "WARNING", "KILLED")
            ]

        (b_run,) = wait_until(lambda: ended("b"), 90, "b, triggered by a's end")
        assert b_run["state"]["current"] == "SUCCESS"
        assert b_run["inputs"] == {"got": f"made by {a_id}"}
        assert b_run["trigger"]["variables"]["executionId"] == a_id
        (c_run,) = wait_until(lambda: ended("c"), 90, "c, after both a and b")
        assert c_run["state"]["current"] == "SUCCESS"
        # c started once both had ended, and once only
        b_end = b_run["state"]["endDate"]
        assert c_run["state"]["startDate"] >= b_end
        assert len(_executions(client, "c")) == 1
