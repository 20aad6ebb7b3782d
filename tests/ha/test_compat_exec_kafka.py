"""Executor-side Kestra compatibility (issue 14) on Kafka: a webserver (with its indexer), a
Faust executor and a worker, each its own ``lanner server <component>`` process
(``KafkaDeployment``), sharing internal storage and nothing else; one deployment for the
module. Flows, outcomes and the Kestra sources they follow: ``tests/embedded/
compat_exec_flows.py`` (the embedded side: ``tests/embedded/test_compat_exec.py`` and
``tests/embedded/test_kv_namespace_flows.py``).

- ``kv()`` in ``If``/``Switch``/``runIf``/subflow inputs/flow outputs: the Faust executor
  reads the KV store (internal storage) for the keys its core asks for (``executor/kv.py``);
- ForEachItem with many batches (200 here, 5,000 by hand: ``LANNER_TEST_EACH_BATCHES``);
- ForEachItem's batch executions killed with their parent (ids derived, not listed);
- restart of a PAUSED execution (Kestra's rules, through the older ``/restart`` path), then
  labels on it visible to the GET right after (read-your-writes before indexing).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conformance.runner import Api
from tests.embedded import compat_exec_flows as flows
from tests.embedded import kv_flows
from tests.infra.deployment import KafkaDeployment

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]

DEADLINE = 300.0  # a loaded machine: generous, never a sleep


@pytest.fixture(scope="module")
def client(
    kafka_bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    base: Path = tmp_path_factory.mktemp("compat-exec-kafka")
    prefix = f"t-compat-exec-{uuid.uuid4().hex[:8]}."
    deployment = KafkaDeployment(kafka_bootstrap_servers, prefix, base)
    try:
        deployment.start()
        with httpx.Client(base_url=deployment.url, timeout=60) as http:
            kv_flows.deploy(
                http,
                [*flows.KV_FLOWS, *flows.EACH_FLOWS, *flows.EACH_KILL_FLOWS, flows.PAUSE_RESTART],
            )
            yield http
    finally:
        deployment.stop()


def test_kv_in_executor_renders(client: httpx.Client) -> None:
    flows.check_kv_in_executor_renders(client)
    flows.check_kv_missing_in_executor_render(client)


def test_for_each_item_many_batches(client: httpx.Client) -> None:
    flows.check_for_each_item_many_batches(
        Api(client), flows.each_batches(default=200), DEADLINE * 2
    )


def test_kill_reaches_every_batch(client: httpx.Client) -> None:
    flows.check_kill_reaches_every_batch(Api(client), DEADLINE)


def test_restart_of_a_paused_execution_and_labels(client: httpx.Client) -> None:
    flows.check_restart_of_a_paused_execution(Api(client), DEADLINE)
