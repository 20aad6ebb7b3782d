"""The queue contract on real Kafka: one broker, and the transaction test on three brokers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from click.testing import CliRunner

from common.cli.kafka import kafka
from common.errors import QueueError
from common.queue.base import EXECUTIONS, EXECUTOR
from common.queue.kafka_client import create_admin
from tests.contracts.queue import (
    Member,
    QueueContract,
    TransactionContract,
    all_partitions,
    open_queue,
    poll_until,
)
from tests.infra.kafka import KafkaCluster

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

PARTITIONS = 4


def kafka_queue_settings(servers: str, prefix: str) -> dict[str, Any]:
    """Creates the topics as an operator would (`lanner kafka init`), and the settings of a
    queue on them. Group timeouts are short so that a killed member is noticed in seconds."""
    result = CliRunner().invoke(
        kafka,
        [
            "init",
            "--bootstrap-servers",
            servers,
            "--prefix",
            prefix,
            "--partitions",
            str(PARTITIONS),
        ],
    )
    assert result.exit_code == 0, result.output
    return {
        "queue": "kafka",
        "kafka_bootstrap_servers": servers,
        "kafka_topic_prefix": prefix,
        "queue_max_record_bytes": 100_000,
        "kafka_consumer_config": {
            "session.timeout.ms": 6000,  # the brokers' group.min.session.timeout.ms
            "heartbeat.interval.ms": 500,
        },
    }


class TestKafkaQueue(QueueContract):
    @pytest.fixture
    def queue_settings(self, kafka_bootstrap_servers: str, unique_name: str) -> dict[str, Any]:
        return kafka_queue_settings(kafka_bootstrap_servers, unique_name + ".")

    def test_topics_are_prefixed_and_partitioned_as_kafka_init_made_them(
        self, queue_settings: dict[str, Any]
    ) -> None:
        queue = open_queue(queue_settings)
        assert queue.partitions(EXECUTOR) == PARTITIONS
        for _ in range(2):  # asking must not create it, even on a broker that auto-creates
            with pytest.raises(QueueError, match="lanner kafka init"):
                queue.partitions("no-such-topic")
        admin = create_admin(queue_settings["kafka_bootstrap_servers"])
        assert queue.kafka_topic("no-such-topic") not in admin.list_topics(timeout=10).topics

    def test_a_newer_incarnation_of_an_instance_fences_the_older_one(
        self, queue_settings: dict[str, Any]
    ) -> None:
        queue = open_queue(queue_settings)
        group = f"g-{uuid.uuid4().hex[:8]}"
        queue.emit(EXECUTOR, "k", b"in")
        zombie = Member(queue, [EXECUTOR], group, instance_id="w1", commit=False)
        poll_until([zombie], lambda: zombie.received, "the first incarnation to read")
        restart = Member(queue, [EXECUTOR], group, instance_id="w1", commit=False)
        with pytest.raises(QueueError, match="fenced|can no longer be used"):
            zombie.subscription.produce_and_commit(
                [(EXECUTIONS, "k", b"from-zombie")], zombie.received
            )
        with pytest.raises(QueueError, match="can no longer be used"):
            zombie.subscription.produce_and_commit([(EXECUTIONS, "k", b"again")], [])
        # closing the fenced member must not hang (librdkafka destroys an unclosed consumer
        # whenever the garbage collector gets to it, possibly in a later test)
        zombie.close()
        restart.close()
        queue.close()

    def test_deployments_with_other_prefixes_share_no_group_and_no_instance(
        self, queue_settings: dict[str, Any], unique_name: str
    ) -> None:
        # two deployments on one cluster (or two tests on one broker): the same group name and
        # the same worker id must neither fence nor rebalance each other
        other_settings = kafka_queue_settings(
            queue_settings["kafka_bootstrap_servers"], unique_name + "-other."
        )
        mine, other = open_queue(queue_settings), open_queue(other_settings)
        group = f"g-{uuid.uuid4().hex[:8]}"
        first = Member(mine, [EXECUTOR], group, instance_id="worker-1")
        poll_until([first], lambda: first.held, "the first deployment's member assigned")
        second = Member(other, [EXECUTOR], group, instance_id="worker-1")
        poll_until([first, second], lambda: second.held, "the other deployment's member assigned")
        mine.emit(EXECUTOR, "k", b"still mine")
        poll_until([first, second], lambda: "still mine" in first.values(), "the first to read on")
        assert first.held == all_partitions(mine, EXECUTOR)  # committed too: not fenced
        first.close()
        second.close()
        mine.close()
        other.close()


class TestKafkaTransactionsOnThreeBrokers(TransactionContract):
    @pytest.fixture
    def queue_settings(self, kafka_cluster3: KafkaCluster, unique_name: str) -> dict[str, Any]:
        return kafka_queue_settings(kafka_cluster3.bootstrap_servers, unique_name + ".")
