"""pytest fixtures for real Kafka and Elasticsearch (loaded by ``tests/conftest.py``).

Services start lazily, the first time a test asks for them, and stop at the end of the session
(module for the three-node variants). ``LANNER_TEST_KAFKA`` (bootstrap servers) and
``LANNER_TEST_ELASTICSEARCH`` (URL) point the single-node fixtures at existing services instead;
the fault-injection fixtures always start their own clusters. A service that cannot start fails
the test with the cause and the log file; nothing is ever skipped.

At session end every process started here must be gone, or the session fails listing them.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from . import provision, tools
from .elasticsearch import ElasticsearchCluster
from .errors import InfraError
from .kafka import KafkaCluster
from .processes import ManagedProcess, leftovers, start_lanner
from .waiting import wait_until

KAFKA_ENV = "LANNER_TEST_KAFKA"
ELASTICSEARCH_ENV = "LANNER_TEST_ELASTICSEARCH"


class InfraSession:
    """The services this test session started, stopped and checked at the end."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.kafka_clusters: list[KafkaCluster] = []
        self.es_clusters: list[ElasticsearchCluster] = []
        self._fetched = False

    def _fetch(self) -> None:
        if not self._fetched:
            # pytest captures output; the cache is normally warm (`make test` fetched first),
            # otherwise show the download progress on the real stderr.
            provision.fetch(progress=lambda line: print(line, file=sys.__stderr__, flush=True))
            self._fetched = True

    def kafka(self, size: int = 1) -> KafkaCluster:
        self._fetch()
        cluster = KafkaCluster(self.base_dir / f"kafka{len(self.kafka_clusters) + 1}", size)
        self.kafka_clusters.append(cluster)
        try:
            return cluster.start()
        except BaseException:
            cluster.stop()
            raise

    def elasticsearch(self, size: int = 1) -> ElasticsearchCluster:
        self._fetch()
        cluster = ElasticsearchCluster(self.base_dir / f"es{len(self.es_clusters) + 1}", size)
        self.es_clusters.append(cluster)
        try:
            return cluster.start()
        except BaseException:
            cluster.stop()
            raise

    def close(self) -> None:
        for kafka in self.kafka_clusters:
            kafka.stop()
        for es in self.es_clusters:
            es.stop()
        left = leftovers()
        for proc in left:
            proc.kill()
        if left:
            raise InfraError(
                "processes were still running at the end of the test session (now killed): "
                + ", ".join(f"{proc.name} pid {proc.pid}" for proc in left)
            )


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfraSession]:
    session = InfraSession(tmp_path_factory.mktemp("infra"))
    yield session
    session.close()


def _check_external_kafka(servers: str) -> str:
    from confluent_kafka.admin import AdminClient

    def answers() -> bool:
        try:
            AdminClient({"bootstrap.servers": servers}).list_topics(timeout=3)
        except Exception:  # noqa: BLE001 - retried until the deadline
            return False
        return True

    wait_until(answers, 30, f"Kafka at {KAFKA_ENV}={servers}")
    return servers


def _check_external_elasticsearch(url: str) -> str:
    import urllib.request

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/_cluster/health", timeout=3):
                return True
        except OSError:
            return False

    wait_until(answers, 30, f"Elasticsearch at {ELASTICSEARCH_ENV}={url}")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(infra: InfraSession) -> str:
    """``host:port[,host:port]`` of a Kafka cluster shared by the session."""
    external = os.environ.get(KAFKA_ENV)
    if external:
        return _check_external_kafka(external)
    return infra.kafka(1).bootstrap_servers


@pytest.fixture(scope="session")
def elasticsearch_url(infra: InfraSession) -> str:
    """``http://host:port`` of an Elasticsearch node shared by the session."""
    external = os.environ.get(ELASTICSEARCH_ENV)
    if external:
        return _check_external_elasticsearch(external)
    return infra.elasticsearch(1).url


@pytest.fixture(scope="module")
def kafka_cluster3(infra: InfraSession) -> Iterator[KafkaCluster]:
    """A three-node Kafka cluster of the module's own, for fault injection."""
    cluster = infra.kafka(3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def elasticsearch_cluster3(infra: InfraSession) -> Iterator[ElasticsearchCluster]:
    """A three-node Elasticsearch cluster of the module's own, for fault injection."""
    cluster = infra.elasticsearch(3)
    yield cluster
    cluster.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test, usable as topic, index, group or app id prefix."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"t-{base}-{uuid.uuid4().hex[:8]}"


StartLanner = Callable[..., ManagedProcess]


@pytest.fixture
def lanner_process(tmp_path: Path) -> Iterator[StartLanner]:
    """Starts ``lanner <args>`` as a real subprocess; every one is killed at the end of the test.

    ``lanner_process(["server", "worker"], env={...})`` returns the ``ManagedProcess`` (``.kill()``
    is kill -9; ``.log_path`` is its own log file).
    """
    started: list[ManagedProcess] = []

    def start(
        args: Sequence[str], env: Mapping[str, str] | None = None, name: str | None = None
    ) -> ManagedProcess:
        label = name or "-".join(args)
        log_path = tmp_path / "logs" / f"{label}-{len(started) + 1}.log"
        proc = start_lanner(args, log_path, env=env, cwd=tmp_path, name=name)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """helm, built into the cache with ``go install`` the first time (tests/infra/tools.py)."""
    # pytest captures output; the cache is normally warm (`make test` built helm first),
    # otherwise show the build's progress on the real stderr
    return tools.fetch_helm(progress=lambda line: print(line, file=sys.__stderr__, flush=True))
