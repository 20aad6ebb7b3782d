"""The history plugins (``execution.Count``, ``log.Fetch``, ``PurgeLogs``, ``PurgeExecutions``)
and ``read()`` / ``fileURI()`` on Kafka + Elasticsearch: ``lanner server standalone`` with its
repository on Elasticsearch, the same Kestra-syntax flows and outcomes as
``tests/plugins/test_core_plugins_embedded.py`` (see ``tests.plugins.scenario`` for the Kestra
sources). The history tasks run on the worker, which opens the Elasticsearch repository on
their first use; they read what the indexer copied there, so each check first waits for it.
The row tasks (Reverse, DeduplicateItems, FilterItems) run on Kafka in
``tests/ha/test_compat_plugins_kafka.py`` (no Elasticsearch needed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.ha.cluster import Cluster
from tests.infra.elasticsearch import drop_indices
from tests.infra.fixtures import StartLanner
from tests.infra.processes import free_ports, http_ok
from tests.plugins import scenario

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.timeout(600)]


@pytest.fixture
def index_prefix(elasticsearch_url: str, unique_name: str) -> Iterator[str]:
    prefix = unique_name + "_"
    yield prefix
    from common.repository.elasticsearch_client import create_client

    client = create_client(elasticsearch_url)
    drop_indices(client, prefix)
    client.close()


def test_core_plugins_on_kafka_and_elasticsearch(
    cluster: Cluster, lanner_process: StartLanner, elasticsearch_url: str, index_prefix: str
) -> None:
    (port,) = free_ports(1)
    env = {
        **cluster.env("standalone"),
        "LANNER_REPOSITORY": "elasticsearch",
        "LANNER_ELASTICSEARCH_URL": elasticsearch_url,
        "LANNER_ELASTICSEARCH_INDEX_PREFIX": index_prefix,
    }
    process = lanner_process(
        ["server", "standalone", "--port", str(port)], env=env, name="standalone"
    )
    url = f"http://127.0.0.1:{port}"
    process.wait_for(lambda: http_ok(url + "/health/ready"), 180, "ready")
    with httpx.Client(base_url=url, timeout=30) as client:
        api = scenario.Api(client)
        for check in scenario.HISTORY:
            check(api, f"lanner.plugins.{check.__name__.removeprefix('check_')}")
        scenario.check_read_and_file_uri(api, "lanner.plugins.functions", "lanner")
