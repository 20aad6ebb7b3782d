"""Fault injection on three-node clusters: one node dies, the data stays available."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.elasticsearch import ElasticsearchCluster
from tests.infra.fixtures import StartLanner
from tests.infra.kafka import KafkaCluster
from tests.infra.processes import ManagedProcess, free_ports, http_ok, pid_alive
from tests.infra.waiting import wait_until

pytestmark = pytest.mark.timeout(600)


def _partitions(admin: Any, topic: str) -> dict[int, Any]:
    """Partition metadata of ``topic``; empty while the cluster cannot answer (broker killed)."""
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(topic=topic, timeout=10)
    except KafkaException:
        return {}
    return dict(metadata.topics[topic].partitions)


def _all(conditions: Iterable[bool]) -> bool:
    """``all()`` that is False for no partitions at all (metadata not available)."""
    values = list(conditions)
    return bool(values) and all(values)


def _produce(servers: str, topic: str, keys: range) -> None:
    from confluent_kafka import Producer

    errors: list[str] = []
    producer = Producer(
        {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": 60_000,
        }
    )
    for i in keys:
        producer.produce(
            topic,
            key=str(i).encode(),
            value=f"m{i}".encode(),
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
    assert producer.flush(90) == 0
    assert errors == []


def _consume_all(servers: str, topic: str, group: str, expected: int) -> set[str]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": servers, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    seen: set[str] = set()

    def done() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            seen.add(msg.value().decode())
        return len(seen) >= expected

    try:
        wait_until(done, 120, f"{expected} messages from {topic}")
    finally:
        consumer.close()
    return seen


@pytest.mark.kafka
def test_rf3_topic_accepts_writes_and_serves_reads_with_a_broker_killed(
    kafka_cluster3: KafkaCluster, unique_name: str
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    servers = kafka_cluster3.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": servers})
    topic = unique_name
    new = NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})
    for future in admin.create_topics([new]).values():
        future.result(timeout=30)
    wait_until(
        lambda: _all(len(p.isrs) == 3 for p in _partitions(admin, topic).values()),
        60,
        "every partition to have 3 in-sync replicas",
    )
    _produce(servers, topic, range(0, 30))

    victim = _partitions(admin, topic)[0].leader
    victim_pids = kafka_cluster3.node(victim).process.pids()  # type: ignore[union-attr]
    kafka_cluster3.kill_node(victim)
    assert not [pid for pid in victim_pids if pid_alive(pid)]
    wait_until(
        lambda: _all(p.leader not in (victim, -1) for p in _partitions(admin, topic).values()),
        60,
        f"leaders to move off killed broker {victim}",
    )

    _produce(servers, topic, range(30, 60))
    seen = _consume_all(servers, topic, unique_name, 60)
    assert seen == {f"m{i}" for i in range(60)}

    kafka_cluster3.restart_node(victim)
    wait_until(
        lambda: _all(len(p.isrs) == 3 for p in _partitions(admin, topic).values()),
        90,
        f"broker {victim} to rejoin every ISR",
    )


@pytest.mark.elasticsearch
def test_index_with_one_replica_answers_searches_with_a_node_killed(
    elasticsearch_cluster3: ElasticsearchCluster, unique_name: str
) -> None:
    from elasticsearch import Elasticsearch, helpers

    cluster = elasticsearch_cluster3
    index = unique_name
    es = Elasticsearch(cluster.urls, request_timeout=30)
    try:
        es.indices.create(index=index, settings={"number_of_shards": 3, "number_of_replicas": 1})
        docs = [{"_index": index, "_id": str(i), "n": i, "text": f"doc {i}"} for i in range(50)]
        helpers.bulk(es, docs, refresh="wait_for")
        health = es.cluster.health(index=index, wait_for_status="green", timeout="90s")
        assert health["status"] == "green"

        shards = es.cat.shards(index=index, format="json")
        primary_nodes = sorted({s["node"] for s in shards if s["prirep"] == "p"})
        victim = cluster.node(int(primary_nodes[-1].removeprefix("node-")))
        victim_server = cluster.server_pid(victim.index)
        cluster.kill_node(victim.index)
        assert victim_server is not None and not pid_alive(victim_server)

        survivors = Elasticsearch(
            [n.url for n in cluster.nodes if n is not victim], request_timeout=30
        )

        def all_found() -> bool:
            try:
                result = survivors.search(index=index, query={"match_all": {}}, size=0)
            except Exception:  # noqa: BLE001 - the cluster is re-electing / reallocating
                return False
            return result["_shards"]["failed"] == 0 and result["hits"]["total"]["value"] == 50

        wait_until(all_found, 120, f"all 50 documents searchable without {victim.name}")
        hit = survivors.search(index=index, query={"match": {"text": "7"}})["hits"]["hits"]
        assert [h["_id"] for h in hit] == ["7"]

        cluster.restart_node(victim.index)
        health = survivors.cluster.health(index=index, wait_for_status="green", timeout="120s")
        assert health["status"] == "green" and health["number_of_nodes"] == 3
        survivors.close()
    finally:
        es.close()


def test_a_lanner_subprocess_has_its_own_log(lanner_process: StartLanner) -> None:
    proc = lanner_process(["--version"])
    wait_until(lambda: not proc.running, 60, "`lanner --version` to exit")
    assert proc.returncode == 0
    assert "version" in proc.log_path.read_text()


def test_kill_9_leaves_no_process(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    server = ManagedProcess(
        "http server",
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        tmp_path / "server.log",
        cwd=tmp_path,
    ).start()
    server.wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/"), 30, "the server to answer")
    pids = server.pids()
    server.kill()
    assert server.returncode == -9
    assert not http_ok(f"http://127.0.0.1:{port}/")
    assert not [pid for pid in pids if pid_alive(pid)]


# The main thread (the thread-group leader) exits alone and the server lives on in its other
# thread: /proc shows the leader as a zombie although the process is alive and serving, the
# state a multi-threaded process also passes through while SIGKILL reaches its threads.
_LEADER_EXITS_FIRST = """
import ctypes, sys, threading
from http.server import HTTPServer, SimpleHTTPRequestHandler
server = HTTPServer(("127.0.0.1", int(sys.argv[1])), SimpleHTTPRequestHandler)
threading.Thread(target=server.serve_forever).start()
ctypes.CDLL(None).syscall(60, 0)  # exit(2) of the calling thread only
"""


def test_kill_9_waits_for_a_process_whose_leader_thread_exited(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    server = ManagedProcess(
        "http server",
        [sys.executable, "-c", _LEADER_EXITS_FIRST, str(port)],
        tmp_path / "server.log",
        cwd=tmp_path,
    ).start()
    server.wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/"), 30, "the server to answer")
    assert server.pids() == [server.pid]
    server.kill()
    assert server.returncode == -9
    assert not http_ok(f"http://127.0.0.1:{port}/")


@pytest.mark.kafka
def test_kafka_init_on_three_brokers_replicates_three_times(
    kafka_cluster3: KafkaCluster, unique_name: str
) -> None:
    from click.testing import CliRunner
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    from common.cli.kafka import kafka

    servers = kafka_cluster3.bootstrap_servers
    prefix = unique_name + "."
    result = CliRunner().invoke(
        kafka, ["init", "--bootstrap-servers", servers, "--prefix", prefix, "--partitions", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "replication=3" in result.output

    admin = AdminClient({"bootstrap.servers": servers})
    topic = prefix + "executions"
    partitions = admin.list_topics(topic=topic, timeout=10).topics[topic].partitions
    assert {len(p.replicas) for p in partitions.values()} == {3}
    resource = ConfigResource(ResourceType.TOPIC, topic)
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    assert config["min.insync.replicas"].value == "2"
    assert config["cleanup.policy"].value == "compact"
