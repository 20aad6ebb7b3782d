"""`lanner server standalone`: every component in one process on Kafka, driven by its API."""

from __future__ import annotations

import httpx
import pytest

from tests.ha.cluster import Cluster
from tests.infra.fixtures import StartLanner
from tests.infra.processes import free_ports, http_ok
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

FLOW = """id: hello
namespace: ha
inputs:
  - id: name
    type: STRING
    defaults: World
tasks:
  - id: greet
    type: io.kestra.plugin.core.debug.Return
    format: "Hello {{ inputs.name }}"
"""


def test_standalone_runs_an_execution_created_through_its_api_and_stops_on_sigterm(
    cluster: Cluster, lanner_process: StartLanner
) -> None:
    (port,) = free_ports(1)
    process = lanner_process(
        ["server", "standalone", "--port", str(port)],
        env={**cluster.env("standalone"), "LANNER_REPOSITORY": "sqlite"},
        name="standalone",
    )
    url = f"http://127.0.0.1:{port}"
    process.wait_for(lambda: http_ok(url + "/health/ready"), 120, "ready")
    with httpx.Client(base_url=url + "/api/v1", timeout=30) as api:
        deployed = api.post("/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"})
        assert deployed.status_code == 200, deployed.text
        created = api.post("/executions/ha/hello", files={"name": (None, "Kafka")})
        assert created.status_code == 200, created.text
        execution_id = created.json()["id"]

        def ended() -> dict | None:
            found = api.get(f"/executions/{execution_id}")
            body = found.json() if found.status_code == 200 else None
            return body if body and body["state"]["current"] == "SUCCESS" else None

        execution = wait_until(ended, 120, "the execution to succeed")
    assert execution["taskRunList"][0]["outputs"] == {"value": "Hello Kafka"}
    process.stop()
    assert process.returncode == 0, process.log_path.read_text()[-3000:]
