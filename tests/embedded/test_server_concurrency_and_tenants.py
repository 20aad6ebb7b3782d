"""On a real ``lanner server local``, through the API: a flow limited to one concurrent
execution never runs two, and a Flow trigger fires in a tenant other than ``main``."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.infra.waiting import wait_until

NAMESPACE = "lanner.acceptance"
LIMITED = f"""\
id: limited
namespace: {NAMESPACE}
concurrency:
  limit: 1
  behavior: QUEUE
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.05S
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: done
"""
UPSTREAM = f"""\
id: upstream
namespace: {NAMESPACE}
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: up
"""
DOWNSTREAM = f"""\
id: downstream
namespace: {NAMESPACE}
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "after {{{{ trigger.executionId }}}}"
triggers:
  - id: after-upstream
    type: io.kestra.plugin.core.trigger.Flow
    preconditions:
      id: upstream-done
      flows:
        - namespace: {NAMESPACE}
          flowId: upstream
          states: [SUCCESS]
"""
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}
TENANT = "acme"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = LocalServer(Path(tmp_path_factory.mktemp("acceptance")))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            yield http
    finally:
        server.stop()


def _deploy(client: httpx.Client, source: str, prefix: str = "/api/v1") -> None:
    response = client.post(
        f"{prefix}/flows", content=source, headers={"content-type": "application/x-yaml"}
    )
    assert response.status_code < 300, response.text


def _search(client: httpx.Client, prefix: str = "/api/v1", **params: Any) -> list[dict[str, Any]]:
    response = client.get(
        f"{prefix}/executions/search", params={"namespace": NAMESPACE, "size": 1000, **params}
    )
    response.raise_for_status()
    return list(response.json()["results"])


def test_a_limit_of_one_never_runs_two_executions_at_once(client: httpx.Client) -> None:
    _deploy(client, LIMITED)

    def create(_: int) -> str:
        response = client.post(f"/api/v1/executions/{NAMESPACE}/limited")
        response.raise_for_status()
        return str(response.json()["id"])

    with ThreadPoolExecutor(10) as pool:
        created = set(pool.map(create, range(30)))
    assert len(created) == 30
    most_running = 0
    seen: dict[str, str] = {}

    def all_ended() -> bool:
        nonlocal most_running
        executions = _search(client, flowId="limited")
        running = [e["id"] for e in executions if e["state"]["current"] == "RUNNING"]
        most_running = max(most_running, len(running))
        assert len(running) <= 1, f"more than one RUNNING at once: {running}"
        seen.update({e["id"]: e["state"]["current"] for e in executions})
        return set(seen) >= created and all(seen[e] in TERMINAL for e in created)

    wait_until(all_ended, 120, "the 30 executions to end", interval=0.05)
    assert most_running == 1
    assert {seen[e] for e in created} == {"SUCCESS"}


def test_a_flow_trigger_fires_in_another_tenant(client: httpx.Client) -> None:
    prefix = f"/api/v1/{TENANT}"
    _deploy(client, UPSTREAM, prefix)
    _deploy(client, DOWNSTREAM, prefix)
    response = client.post(f"{prefix}/executions/{NAMESPACE}/upstream")
    response.raise_for_status()
    upstream_id = response.json()["id"]
    found: list[dict[str, Any]] = []

    def triggered() -> bool:
        found[:] = [
            e
            for e in _search(client, prefix, flowId="downstream")
            if e["state"]["current"] in TERMINAL
        ]
        return bool(found)

    wait_until(triggered, 30, "the downstream flow to run in tenant acme")
    assert [e["state"]["current"] for e in found] == ["SUCCESS"]
    assert found[0]["trigger"]["variables"]["executionId"] == upstream_id
    # nothing leaked into the default tenant
    assert _search(client, flowId="downstream") == []
