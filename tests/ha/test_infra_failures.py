"""tests/infra fails loudly, naming the cause and the log file, when a service cannot start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.infra.errors import InfraError
from tests.infra.kafka import KafkaCluster
from tests.infra.processes import leftovers

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def test_a_port_in_use_is_named(infra: object, tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path / "kafka", 1)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", cluster.nodes[0].port))
        squatter.listen()
        with pytest.raises(InfraError, match=f"port {cluster.nodes[0].port} .* already in use"):
            cluster.start()


def test_a_jvm_that_dies_at_start_is_reported_with_its_log(infra: object, tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path / "kafka", 1, heap="-Xmx1k")
    with pytest.raises(InfraError) as info:
        cluster.start()
    message = str(info.value)
    assert "exited (code 1)" in message
    assert f"log file: {cluster.nodes[0].log_path}" in message
    assert "heap" in message.lower()  # the JVM's own complaint, from the log tail
    # this cluster's node only: the session's own Kafka (also "Kafka node 1") may be running
    assert not [p for p in leftovers() if p.log_path == cluster.nodes[0].log_path]
