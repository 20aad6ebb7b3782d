"""On a real ``lanner server local``, two tenants: execution files are tenant-first
(``lanner:///<tenant>/<namespace>/<flow>/executions/<id>/``, Kestra's multi-tenant layout) and a
task of tenant ``acme`` that is given the URI of a ``main`` execution's file fails, with a message
naming the URI, without reading it (``read()`` and a task property alike); the same flows read
their own tenant's files. The file API refuses another tenant's execution (404).

Kestra: ``ReadFileFunction.validateFileUri`` ("Unable to read the file ... as it didn't belong to
the current execution"); Lanner's boundary is the tenant (files travel between executions).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.infra.waiting import wait_until

NAMESPACE = "lanner.confined"
WRITER = f"""\
id: writer
namespace: {NAMESPACE}
inputs:
  - id: text
    type: STRING
tasks:
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: "{{{{ inputs.text }}}}"
    extension: .txt
"""
READER = f"""\
id: reader
namespace: {NAMESPACE}
inputs:
  - id: uri
    type: STRING
tasks:
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(inputs.uri) }}}}"
"""
SIZER = f"""\
id: sizer
namespace: {NAMESPACE}
inputs:
  - id: uri
    type: STRING
tasks:
  - id: size
    type: io.kestra.plugin.core.storage.Size
    uri: "{{{{ inputs.uri }}}}"
"""
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}
ACME = "/api/v1/acme"
MAIN = "/api/v1/main"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = LocalServer(Path(tmp_path_factory.mktemp("confined")))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for prefix in (MAIN, ACME):
                for source in (WRITER, READER, SIZER):
                    response = http.post(
                        f"{prefix}/flows",
                        content=source,
                        headers={"content-type": "application/x-yaml"},
                    )
                    assert response.status_code < 300, response.text
            yield http
    finally:
        server.stop()


def _run(client: httpx.Client, prefix: str, flow: str, inputs: dict[str, str]) -> dict[str, Any]:
    response = client.post(f"{prefix}/executions/{NAMESPACE}/{flow}", data=inputs)
    assert response.status_code < 300, response.text
    execution_id = response.json()["id"]

    def ended() -> dict[str, Any] | None:
        body = client.get(f"{prefix}/executions/{execution_id}").json()
        return body if body["state"]["current"] in TERMINAL else None

    return wait_until(ended, 90, f"{flow} in {prefix} ends")


def _outputs(execution: dict[str, Any], task_id: str) -> dict[str, Any]:
    return next(r for r in execution["taskRunList"] if r["taskId"] == task_id)["outputs"]


def _errors(client: httpx.Client, prefix: str, execution: dict[str, Any]) -> str:
    logs = client.get(f"{prefix}/logs/{execution['id']}").json()
    return "\n".join(line["message"] for line in logs if line["level"] == "ERROR")


def test_a_task_reads_its_tenant_files_and_fails_on_another_tenants(client: httpx.Client) -> None:
    main_write = _run(client, MAIN, "writer", {"text": "secret of main"})
    assert main_write["state"]["current"] == "SUCCESS", main_write
    main_uri = _outputs(main_write, "write")["uri"]
    assert main_uri.startswith(
        f"lanner:///main/lanner/confined/writer/executions/{main_write['id']}/"
    )
    acme_write = _run(client, ACME, "writer", {"text": "acme's own"})
    acme_uri = _outputs(acme_write, "write")["uri"]
    assert acme_uri.startswith("lanner:///acme/lanner/confined/writer/executions/")

    own = _run(client, ACME, "reader", {"uri": acme_uri})
    assert own["state"]["current"] == "SUCCESS", own
    assert _outputs(own, "read")["value"] == "acme's own"
    own_size = _run(client, ACME, "sizer", {"uri": acme_uri})
    assert own_size["state"]["current"] == "SUCCESS", own_size
    assert _outputs(own_size, "size")["size"] == len("acme's own")

    for flow in ("reader", "sizer"):
        foreign = _run(client, ACME, flow, {"uri": main_uri})
        assert foreign["state"]["current"] == "FAILED", foreign
        errors = wait_until(
            lambda ex=foreign: _errors(client, ACME, ex) or None, 30, f"{flow}'s error logged"
        )
        assert "belongs to another tenant" in errors and main_uri in errors, errors
        assert "secret of main" not in str(foreign) + errors

    # main's own flows still read main's file, and the file API keeps tenants apart
    assert _outputs(_run(client, MAIN, "reader", {"uri": main_uri}), "read")["value"] == (
        "secret of main"
    )
    path = {"path": main_uri}
    assert client.get(f"{ACME}/executions/{main_write['id']}/file", params=path).status_code == 404
    assert client.get(f"{MAIN}/executions/{main_write['id']}/file", params=path).content == (
        b"secret of main"
    )
