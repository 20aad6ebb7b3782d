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

from . import compat_exec_flows, kv_flows


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = LocalServer(Path(tmp_path_factory.mktemp("kv")))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            kv_flows.deploy(http)
            kv_flows.deploy(http, compat_exec_flows.KV_FLOWS)
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


def test_kv_where_the_executor_renders(client: httpx.Client) -> None:
    """``kv()`` in ``If``/``Switch``/``runIf``/subflow inputs/flow outputs (the executor
    renders them): ``tests/embedded/compat_exec_flows.py``, Kestra's ``KvFunctionTest``."""
    compat_exec_flows.check_kv_in_executor_renders(client)
    compat_exec_flows.check_kv_missing_in_executor_render(client)
