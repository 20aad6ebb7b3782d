"""pytest fixtures for real Kafka and Elasticsearch (loaded by ``tests/conftest.py``).

Services start lazily, the first time a test asks for them, and stop at the end of the session
(the three-node clusters and the node to freeze: right after the last test using them).
``LANNER_TEST_KAFKA`` (bootstrap servers) and ``LANNER_TEST_ELASTICSEARCH`` (URL) point the
single-node fixtures at existing services instead; the fault-injection fixtures always start
their own clusters. A service that cannot start fails the test with the cause and the log file;
nothing is ever skipped.

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
from .processes import ManagedProcess, dump_stacks, leftovers, start_lanner
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


# The three-node clusters and the node to freeze are shared by the modules that use them: started
# by the first test asking, stopped right after the last test of the session using them (not at
# the session's end). Each start costs tens of seconds of JVMs on two cores; their tests work on
# topics and indices of their own (unique_name) and restart what they kill.
_SHARED_SERVICES = ("_kafka_cluster3", "_elasticsearch_cluster3", "_elasticsearch_to_freeze")
_last_user: dict[str, str] = {}  # fixture name -> node id of the last test using it
_running: dict[str, KafkaCluster | ElasticsearchCluster] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        for name in _SHARED_SERVICES:
            if name in getattr(item, "fixturenames", ()):
                _last_user[name] = item.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    for name, last in _last_user.items():
        if last == item.nodeid and name in _running:
            _running.pop(name).stop()


def _shared(name: str, cluster: KafkaCluster | ElasticsearchCluster) -> None:
    _running[name] = cluster


@pytest.fixture(scope="session")
def _kafka_cluster3(infra: InfraSession) -> Iterator[KafkaCluster]:
    cluster = infra.kafka(3)
    _shared("_kafka_cluster3", cluster)
    yield cluster
    _running.pop("_kafka_cluster3", None)
    cluster.stop()


@pytest.fixture
def kafka_cluster3(_kafka_cluster3: KafkaCluster) -> KafkaCluster:
    """A three-node Kafka cluster for fault injection, shared by the tests that use one: a node
    an earlier test left down (it failed before restarting it) is started again first."""
    for node in _kafka_cluster3.nodes:
        if node.process is None or not node.process.running:
            _kafka_cluster3.restart_node(node.node_id)
    return _kafka_cluster3


@pytest.fixture(scope="session")
def _elasticsearch_cluster3(infra: InfraSession) -> Iterator[ElasticsearchCluster]:
    cluster = infra.elasticsearch(3)
    _shared("_elasticsearch_cluster3", cluster)
    yield cluster
    _running.pop("_elasticsearch_cluster3", None)
    cluster.stop()


@pytest.fixture
def elasticsearch_cluster3(_elasticsearch_cluster3: ElasticsearchCluster) -> ElasticsearchCluster:
    """A three-node Elasticsearch cluster for fault injection, shared by the tests that use one:
    a node an earlier test left down is started again first."""
    for node in _elasticsearch_cluster3.nodes:
        if node.process is None or not node.process.running:
            _elasticsearch_cluster3.restart_node(node.index)
    return _elasticsearch_cluster3


@pytest.fixture(scope="session")
def _elasticsearch_to_freeze(infra: InfraSession) -> Iterator[ElasticsearchCluster]:
    cluster = infra.elasticsearch(1)
    _shared("_elasticsearch_to_freeze", cluster)
    yield cluster
    _running.pop("_elasticsearch_to_freeze", None)
    cluster.stop()


@pytest.fixture
def elasticsearch_to_freeze(_elasticsearch_to_freeze: ElasticsearchCluster) -> ElasticsearchCluster:
    """A one-node Elasticsearch of its own for the tests that freeze it (SIGSTOP), so that the
    session's node (``elasticsearch_url``) is never frozen; shared by those tests. A node an
    earlier test left down is started again first."""
    node = _elasticsearch_to_freeze.nodes[0]
    if node.process is None or not node.process.running:
        _elasticsearch_to_freeze.restart_node(node.index)
    return _elasticsearch_to_freeze


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name unique to this test, usable as topic, index, group or app id prefix."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"t-{base}-{uuid.uuid4().hex[:8]}"


StartLanner = Callable[..., ManagedProcess]


@pytest.fixture
def lanner_process(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartLanner]:
    """Starts ``lanner <args>`` as a real subprocess; every one is killed at the end of the test.

    ``lanner_process(["server", "worker"], env={...})`` returns the ``ManagedProcess`` (``.kill()``
    is kill -9; ``.log_path`` is its own log file). When the test failed, each process still
    running first writes its threads' stacks to its log (SIGUSR1): what a stuck one waited on.
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
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        dump_stacks(started)
    for proc in started:
        proc.kill()


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """helm, built into the cache with ``go install`` the first time (tests/infra/tools.py)."""
    # pytest captures output; the cache is normally warm (`make test` built helm first),
    # otherwise show the build's progress on the real stderr
    return tools.fetch_helm(progress=lambda line: print(line, file=sys.__stderr__, flush=True))
