"""``lanner server local`` serves the management port (``/health/*``, ``/metrics``, no
authentication) when asked, and with authentication on its API port's answers leak nothing.

Kestra serves its management endpoints on a port of their own (``endpoints.all.port: 8081``,
kestra-io/kestra ``application.yml``), open to probes and Prometheus, whatever the API's basic
auth says.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.bench._server import LocalServer
from tests.infra.processes import free_ports

PASSWORD = "management-test-pw"


class _ManagedLocal(LocalServer):
    def __init__(self, data_dir: Path, config: Path, management_port: int) -> None:
        super().__init__(data_dir)
        self.config = config
        self.management_port = management_port

    def argv(self) -> list[str]:
        return [
            *super().argv(),
            "--config",
            str(self.config),
            "--management-port",
            str(self.management_port),
        ]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_ManagedLocal]:
    config = tmp_path / "lanner.yml"
    auth = {
        "enabled": True,
        "token_secret": "management-test-secret-0123456789abcdef",
        "users": [{"username": "ops", "password": PASSWORD, "role": "viewer"}],
    }
    config.write_text(yaml.safe_dump({"auth": auth}))
    started = _ManagedLocal(tmp_path, config, free_ports(1)[0])
    started.start()
    try:
        yield started
    finally:
        started.stop()


def test_management_port_is_open_and_the_api_port_needs_a_credential(
    server: _ManagedLocal,
) -> None:
    management = f"http://127.0.0.1:{server.management_port}"
    assert httpx.get(f"{management}/health/live").json()["status"] == "UP"
    assert httpx.get(f"{management}/health/ready").status_code == 200
    # an API request first, so that its series exists
    assert httpx.get(f"{server.url}/api/v1/flows/search").status_code == 401
    metrics = httpx.get(f"{management}/metrics")
    assert metrics.status_code == 200
    assert "lanner_webserver_http_requests_total" in metrics.text  # the API's own series
    assert "process_cpu_seconds_total" in metrics.text  # the process-wide registry
    # the API port, auth on: probes open (no reason told), metrics only with a credential
    assert httpx.get(f"{server.url}/health/live").status_code == 200
    assert httpx.get(f"{server.url}/health/ready").json() == {"status": "UP"}
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    with_credential = httpx.get(f"{server.url}/metrics", auth=("ops", PASSWORD))
    assert with_credential.status_code == 200
