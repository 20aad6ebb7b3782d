"""Executor-side Kestra compatibility (issue 14) on a real ``lanner server local`` process,
through the API only. Flows, outcomes and Kestra sources: ``tests/embedded/compat_exec_flows.py``
(shared with ``tests/ha/test_compat_exec_kafka.py``); ``kv()`` in executor renders is tested in
``test_kv_namespace_flows.py`` (its server already holds the KV flows).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.conformance.runner import Api

from . import compat_exec_flows as flows


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    server = LocalServer(Path(tmp_path_factory.mktemp("compat-exec")))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for source in [*flows.EACH_FLOWS, *flows.EACH_KILL_FLOWS, flows.PAUSE_RESTART]:
                http.post(
                    "/api/v1/flows", content=source, headers={"content-type": "application/x-yaml"}
                ).raise_for_status()
            yield Api(http)
    finally:
        server.stop()


def test_for_each_item_past_the_old_batch_limit(api: Api) -> None:
    """1,600 batches (the old limit was ~1,500) in ``make test``; run with
    ``LANNER_TEST_EACH_BATCHES=5000`` for the 5,000 batches of the issue (~26 s here)."""
    flows.check_for_each_item_many_batches(api, flows.each_batches(), timeout=600)


def test_kill_reaches_every_batch(api: Api) -> None:
    flows.check_kill_reaches_every_batch(api, timeout=120)


def test_restart_of_a_paused_execution_and_labels(api: Api) -> None:
    flows.check_restart_of_a_paused_execution(api, timeout=120)
