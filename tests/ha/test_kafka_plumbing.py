"""common.queue.kafka_client / kafka_topics and `lanner kafka init` against a real broker."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from common.cli.kafka import kafka
from common.errors import MessageTooLargeError, QueueError
from common.queue.kafka_client import (
    KafkaProducer,
    broker_count,
    create_admin,
    create_consumer,
    ensure_topics,
)
from common.queue.kafka_topics import TOPICS, plan_topics, topic_name
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _init(servers: str, prefix: str, *extra: str) -> list[str]:
    result = CliRunner().invoke(
        kafka,
        ["init", "--bootstrap-servers", servers, "--prefix", prefix, "--partitions", "2", *extra],
    )
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def _cleanup_policies(servers: str, names: list[str]) -> dict[str, str]:
    from confluent_kafka.admin import ConfigResource, ResourceType

    admin = create_admin(servers)
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    return {
        res.name: future.result(timeout=30)["cleanup.policy"].value
        for res, future in admin.describe_configs(resources).items()
    }


def test_kafka_init_creates_the_topic_table_and_a_second_run_changes_nothing(
    kafka_bootstrap_servers: str, unique_name: str
) -> None:
    prefix = unique_name + "."
    first = _init(kafka_bootstrap_servers, prefix, "--worker-group", "gpu")
    planned = plan_topics(prefix, worker_groups=["gpu"])
    assert len(planned) == len(TOPICS) + 2
    assert [line.split()[:2] for line in first[:-1]] == [["created", t.name] for t in planned]

    names = [t.name for t in planned]
    assert _cleanup_policies(kafka_bootstrap_servers, names) == {
        t.name: t.spec.cleanup_policy for t in planned
    }
    metadata = create_admin(kafka_bootstrap_servers).list_topics(timeout=10).topics
    assert {len(metadata[name].partitions) for name in names} == {2}

    second = _init(kafka_bootstrap_servers, prefix, "--worker-group", "gpu")
    assert [line.split()[0] for line in second[:-1]] == ["unchanged"] * len(planned)
    assert second[-1] == f"{len(planned)} unchanged"


def test_kafka_init_restores_a_changed_cleanup_policy(
    kafka_bootstrap_servers: str, unique_name: str
) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    prefix = unique_name + "."
    _init(kafka_bootstrap_servers, prefix)
    admin = create_admin(kafka_bootstrap_servers)
    entry = ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(
        ResourceType.TOPIC, prefix + "executions", incremental_configs=[entry]
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    executions = prefix + "executions"
    wait_until(
        lambda: _cleanup_policies(kafka_bootstrap_servers, [executions])[executions] == "delete",
        30,
        "the altered cleanup policy to be visible",
    )

    lines = _init(kafka_bootstrap_servers, prefix)
    updated = [line for line in lines if line.startswith("updated")]
    assert len(updated) == 1 and prefix + "executions" in updated[0]
    assert _cleanup_policies(kafka_bootstrap_servers, [prefix + "executions"]) == {
        prefix + "executions": "compact"
    }


def test_producer_and_consumer_helpers_round_trip(
    kafka_bootstrap_servers: str, unique_name: str
) -> None:
    admin = create_admin(kafka_bootstrap_servers)
    assert broker_count(admin) >= 1
    ensure_topics(admin, plan_topics(unique_name + ".", partitions=1))
    topic = topic_name("logs", unique_name + ".")  # not compacted: every record stays
    producer = KafkaProducer(kafka_bootstrap_servers)
    for i in range(10):
        producer.send(topic, f"exec-{i % 3}", f"{i}".encode())
    producer.send(topic, "exec-0", None)  # tombstone
    producer.flush()

    consumer = create_consumer(kafka_bootstrap_servers, unique_name)
    consumer.subscribe([topic])
    got: list[tuple[str, bytes | None]] = []

    def eleven() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append((msg.key().decode(), msg.value()))
            consumer.commit(msg, asynchronous=False)
        return len(got) == 11

    try:
        wait_until(eleven, 60, "11 records")
    finally:
        consumer.close()
    assert got[-1] == ("exec-0", None)
    assert sorted(v for _, v in got if v is not None) == sorted(f"{i}".encode() for i in range(10))


def test_an_oversized_record_is_a_message_too_large_error(
    kafka_bootstrap_servers: str, unique_name: str
) -> None:
    producer = KafkaProducer(kafka_bootstrap_servers, **{"message.max.bytes": 100_000})
    with pytest.raises(MessageTooLargeError) as info:
        producer.send(unique_name, "k", b"x" * 200_000)
    assert info.value.__cause__ is not None


def test_an_unreachable_cluster_is_a_queue_error() -> None:
    admin = create_admin("127.0.0.1:1")
    with pytest.raises(QueueError, match="metadata"):
        broker_count(admin, timeout=2)
