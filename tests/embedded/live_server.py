"""What the suites that drive a real ``lanner server local`` through its API share: the server
with its flows deployed, creating an execution, and waiting on one (a condition with a
deadline, never a sleep)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.bench._server import LocalServer
from tests.infra.waiting import wait_until

TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}
EXECUTIONS = "/api/v1/executions"
DEADLINE = 60.0  # generous: the machine is shared

Json = dict[str, Any]


@contextmanager
def serving(base: Path, flows: list[str]) -> Iterator[httpx.Client]:
    """A ``lanner server local`` in ``base`` with ``flows`` deployed, and a client to it."""
    server = LocalServer(base)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for source in flows:
                http.post(
                    "/api/v1/flows", content=source, headers={"content-type": "application/x-yaml"}
                ).raise_for_status()
            yield http
    finally:
        server.stop()


def create(client: httpx.Client, namespace: str, flow_id: str) -> str:
    """Starts an execution of ``namespace.flow_id``; its id."""
    response = client.post(f"{EXECUTIONS}/{namespace}/{flow_id}")
    response.raise_for_status()
    return str(response.json()["id"])


def get(client: httpx.Client, execution_id: str) -> Json:
    response = client.get(f"{EXECUTIONS}/{execution_id}")
    response.raise_for_status()
    return dict(response.json())


def wait(
    client: httpx.Client, execution_id: str, what: str, predicate: Callable[[Json], Any]
) -> Json:
    """The execution once ``predicate`` holds for it (an unknown one is waited for too)."""
    found: Json = {}

    def check() -> bool:
        response = client.get(f"{EXECUTIONS}/{execution_id}")
        if response.status_code != 200:
            return False
        found.clear()
        found.update(response.json())
        return bool(predicate(found))

    wait_until(check, DEADLINE, what)
    return found


def state_in(*states: str) -> Callable[[Json], bool]:
    return lambda e: e["state"]["current"] in states


def terminal(client: httpx.Client, execution_id: str) -> Json:
    return wait(client, execution_id, f"execution {execution_id} to end", state_in(*TERMINAL))


def executions(client: httpx.Client, namespace: str, flow_id: str) -> list[Json]:
    """The stored executions of a flow (a search)."""
    response = client.get(
        f"{EXECUTIONS}/search", params={"namespace": namespace, "flowId": flow_id, "size": 1000}
    )
    response.raise_for_status()
    return list(response.json()["results"])
