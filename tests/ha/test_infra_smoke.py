"""Smoke test of tests/infra: real Kafka and Elasticsearch answer the clients Lanner uses."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.infra.kafka import KafkaCluster
from tests.infra.processes import pid_alive
from tests.infra.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.timeout(300)


def _create_topic(servers: str, name: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": servers})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)


@pytest.mark.kafka
def test_confluent_kafka_produces_and_consumes(
    kafka_bootstrap_servers: str, unique_name: str
) -> None:
    from confluent_kafka import Consumer, Producer

    topic = unique_name
    _create_topic(kafka_bootstrap_servers, topic, partitions=3)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap_servers, "enable.idempotence": True, "acks": "all"}
    )
    sent = {f"key-{i}": f"value-{i}" for i in range(20)}
    for key, value in sent.items():
        producer.produce(topic, key=key.encode(), value=value.encode())
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap_servers,
            "group.id": unique_name,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received: dict[str, str] = {}

    def all_received() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None:
            assert msg.error() is None, msg.error()
            received[msg.key().decode()] = msg.value().decode()
        return received == sent

    try:
        wait_until(all_received, 60, f"20 messages on {topic}")
    finally:
        consumer.close()


def _faust_app(
    app_id: str, servers: str, topic_name: str, datadir: Path
) -> tuple[Any, Any, Any, asyncio.Event]:
    """A Faust app summing values per key in a table (changelog ``<id>-counts-changelog``)."""
    import faust

    app = faust.App(
        app_id,
        broker=";".join(f"kafka://{server}" for server in servers.split(",")),
        store="memory://",
        topic_partitions=1,
        topic_replication_factor=1,
        web_enabled=False,
        datadir=str(datadir),
    )
    topic = app.topic(topic_name, key_type=str, value_type=int)
    counts = app.Table("counts", default=int, partitions=1)
    done = asyncio.Event()

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for key, value in stream.items():
            counts[key] += value
            if counts[key] >= 6:
                done.set()

    return app, topic, counts, done


@pytest.mark.kafka
def test_faust_table_is_recovered_from_its_changelog(
    kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path
) -> None:
    app_id, topic_name = unique_name, unique_name + "-in"
    servers = kafka_bootstrap_servers
    _create_topic(kafka_bootstrap_servers, topic_name)

    async def first_run() -> dict[str, int]:
        app, topic, counts, done = _faust_app(app_id, servers, topic_name, tmp_path)
        await app.start()
        try:
            for value in (1, 2, 3):
                await topic.send(key="a", value=value)
            await asyncio.wait_for(done.wait(), 90)
            return dict(counts)
        finally:
            await app.stop()

    async def second_run() -> dict[str, int]:
        # A new app with the same id: its memory store starts empty, so any value comes from
        # replaying the changelog topic during recovery.
        app, _topic, counts, _done = _faust_app(app_id, servers, topic_name, tmp_path)
        assert dict(counts) == {}
        await app.start()
        try:
            await async_wait_until(lambda: counts.get("a") == 6, 90, "table recovery")
            return dict(counts)
        finally:
            await app.stop()

    assert asyncio.run(first_run()) == {"a": 6}
    assert asyncio.run(second_run()) == {"a": 6}

    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": kafka_bootstrap_servers}).list_topics(timeout=10)
    assert f"{app_id}-counts-changelog" in topics.topics


@pytest.mark.elasticsearch
def test_elasticsearch_indexes_and_searches(elasticsearch_url: str, unique_name: str) -> None:
    from elasticsearch import Elasticsearch

    es = Elasticsearch(elasticsearch_url, request_timeout=30)
    try:
        # `GET /` (es.info(), es.ping()) lives in the rest-root module, absent from the test
        # distribution (see tests/infra/provision.py); node info gives the version.
        versions = {node["version"] for node in es.nodes.info()["nodes"].values()}
        assert all(version.startswith("8.") for version in versions)
        index = unique_name
        es.index(
            index=index,
            id="1",
            document={"namespace": "company.team", "message": "hello kafka and elasticsearch"},
            refresh="wait_for",
        )
        es.index(index=index, id="2", document={"namespace": "other", "message": "goodbye"})
        es.indices.refresh(index=index)
        hits = es.search(index=index, query={"match": {"message": "elasticsearch"}})["hits"]
        assert hits["total"]["value"] == 1
        assert hits["hits"][0]["_id"] == "1"
        es.indices.delete(index=index)
    finally:
        es.close()


@pytest.mark.kafka
def test_a_stopped_cluster_leaves_no_process(infra: Any, tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path / f"kafka-{uuid.uuid4().hex[:6]}", 1).start()
    pids = cluster.pids()
    assert pids and all(pid_alive(pid) for pid in pids)
    cluster.stop()
    assert not [pid for pid in pids if pid_alive(pid)]
