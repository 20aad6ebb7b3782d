"""The KV store and namespace files across components on Kafka: a webserver, an executor and a
worker, each its own ``lanner server <component>`` process (``KafkaDeployment``), sharing
internal storage (a data directory, as a shared volume) and nothing else. A worker writes KV
entries and namespace files that the webserver reads back, and the reverse.

Flows and outcomes: ``tests/embedded/kv_flows.py`` (Kestra's sources cited there).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.embedded import kv_flows
from tests.infra.deployment import KafkaDeployment

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(400)]


def test_kv_and_namespace_files_flows_across_components(
    kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path
) -> None:
    deployment = KafkaDeployment(kafka_bootstrap_servers, unique_name + ".", tmp_path)
    try:
        deployment.start()
        with httpx.Client(base_url=deployment.url, timeout=30) as client:
            kv_flows.deploy(
                client, [kv_flows.KV_FLOW, kv_flows.KESTRA_KV_FLOW, kv_flows.FILES_FLOW]
            )
            kv_flows.check_kv_roundtrip(client)
            kv_flows.check_kestra_kv_flow(client)
            kv_flows.check_namespace_files(client)
    finally:
        deployment.stop()
