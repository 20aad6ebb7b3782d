"""The KV store and namespace files from flows in Kestra's syntax, on a real ``lanner server
local`` process (embedded backend), through the API only: workers write, the webserver reads.

The flows and the outcomes they must give, with the Kestra sources each comes from, are in
``tests/embedded/kv_flows.py`` (shared with the Kafka test ``tests/ha/test_kv_kafka.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bench._server import LocalServer

from . import kv_flows


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = LocalServer(Path(tmp_path_factory.mktemp("kv")))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            kv_flows.deploy(http)
            yield http
    finally:
        server.stop()


def test_set_get_getkeys_delete_and_kv_function(client: httpx.Client) -> None:
    kv_flows.check_kv_roundtrip(client)


def test_failures_carry_kestras_messages(client: httpx.Client) -> None:
    kv_flows.check_kv_failures(client)


def test_kestras_own_kv_flow(client: httpx.Client) -> None:
    kv_flows.check_kestra_kv_flow(client)


def test_upload_download_delete_namespace_files(client: httpx.Client) -> None:
    kv_flows.check_namespace_files(client)


def test_another_tenant_has_its_own_store_and_files(client: httpx.Client) -> None:
    kv_flows.check_tenant(client)


EXECUTOR_KV = f"""\
id: kv_in_run_if
namespace: {kv_flows.NS}
tasks:
  - id: guarded
    type: io.kestra.plugin.core.log.Log
    runIf: "{{{{ kv('flag') ?? false }}}}"
    message: not rendered by a worker
"""


def test_kv_where_the_executor_renders_fails_with_a_message(client: httpx.Client) -> None:
    """A known difference (notes/issue-14.md): the executor's core reads no storage, so
    ``kv()`` in ``runIf`` fails the task run with a message, never the executor."""
    kv_flows.deploy(client, [EXECUTOR_KV])
    execution = kv_flows.run(client, "kv_in_run_if")
    assert execution["state"]["current"] == "FAILED"
    logs = client.get(f"/api/v1/logs/{execution['id']}").json()
    assert any("function 'kv()' is only available" in e["message"] for e in logs), logs
