"""The row, history and file-function plugins on the embedded backend (``lanner server local``),
with ``storage_uri_scheme: kestra``: Lanner writes ``kestra://`` URIs and reads both schemes.
The flows and the outcomes are in ``tests.plugins.scenario`` (with the Kestra sources cited);
``tests/ha/test_core_plugins_kafka.py`` runs the same on Kafka + Elasticsearch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.plugins import scenario

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    server = LocalServer(
        Path(tmp_path_factory.mktemp("plugins")), env={"LANNER_STORAGE_URI_SCHEME": "kestra"}
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api(server: LocalServer) -> Iterator[scenario.Api]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield scenario.Api(client)


@pytest.mark.parametrize("check", scenario.ROWS + scenario.HISTORY, ids=lambda c: c.__name__)
def test_plugin(api: scenario.Api, check: Callable[[scenario.Api, str], None]) -> None:
    check(api, f"lanner.plugins.{check.__name__.removeprefix('check_')}")


def test_read_and_file_uri(api: scenario.Api) -> None:
    scenario.check_read_and_file_uri(api, "lanner.plugins.functions", "kestra")
