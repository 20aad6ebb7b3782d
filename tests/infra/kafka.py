"""Apache Kafka in KRaft mode: one or more combined broker+controller JVMs on 127.0.0.1.

Each node gets two free ports (client, controller), a data dir and a log file under the cluster's
base directory. Every node is a voter of the controller quorum, so a three-node cluster keeps a
quorum and serves topics with replication factor 3 while any one node is down.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import provision
from .errors import InfraError
from .processes import (
    ManagedProcess,
    ensure_port_free,
    free_ports,
    port_open,
    signal_group,
    tail,
)

HEAP = "-Xmx512m"
START_TIMEOUT = 120.0

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = org.apache.kafka
logger.kafka.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = warn
"""

_quiet_logger = logging.getLogger("tests.infra.kafka.client")
_quiet_logger.addHandler(logging.NullHandler())
_quiet_logger.propagate = False


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "kafka.log"


@dataclass
class KafkaCluster:
    """``KafkaCluster(base_dir, size=3).start()``; ``bootstrap_servers`` for clients."""

    base_dir: Path
    size: int = 1
    detached: bool = False
    heap: str = HEAP
    cluster_id: str = field(default_factory=lambda: _random_cluster_id())
    nodes: list[KafkaNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.nodes:
            ports = free_ports(2 * self.size)
            self.nodes = [
                KafkaNode(i + 1, ports[2 * i], ports[2 * i + 1], self.base_dir / f"kafka-{i + 1}")
                for i in range(self.size)
            ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def start(self, timeout: float = START_TIMEOUT) -> KafkaCluster:
        if not (provision.kafka_dir() / ".complete").exists():
            raise InfraError("Kafka is not in the cache: run `python -m tests.infra fetch` first")
        for node in self.nodes:
            ensure_port_free(node.port, f"Kafka node {node.node_id}")
            ensure_port_free(node.controller_port, f"Kafka controller {node.node_id}")
            self._configure(node)
            self._format(node)
        for node in self.nodes:
            self._launch(node)
        for node in self.nodes:
            self.wait_node_ready(node, timeout)
        return self

    def _configure(self, node: KafkaNode) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        rf = min(3, self.size)
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": node.directory / "data",
            "num.partitions": 1,
            "auto.create.topics.enable": "false",  # topics come from `lanner kafka init`
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 10,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # a killed executor's partitions move within seconds (LANNER_EXECUTOR_SESSION_TIMEOUT)
            "group.min.session.timeout.ms": 1000,
            "log.segment.bytes": 16 * 1024 * 1024,
            "log.retention.check.interval.ms": 60_000,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
        }
        (node.directory / "server.properties").write_text(
            "".join(f"{key}={value}\n" for key, value in props.items())
        )
        (node.directory / "log4j2.properties").write_text(_LOG4J2)

    def _format(self, node: KafkaNode) -> None:
        if (node.directory / "data" / "meta.properties").exists():
            return
        argv = [
            provision.java_executable(),
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
            "-cp",
            provision.kafka_classpath(),
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            self.cluster_id,
            "-c",
            str(node.directory / "server.properties"),
        ]
        with open(node.log_path, "ab") as log:
            log.write(b"=== formatting storage\n")
            log.flush()
            code = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, check=False
            ).returncode
        if code != 0:
            raise InfraError(
                f"formatting Kafka node {node.node_id} storage failed (exit {code})",
                node.log_path,
                tail(node.log_path),
            )

    def _launch(self, node: KafkaNode) -> None:
        argv = [
            provision.java_executable(),
            "-Xms128m",
            self.heap,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.directory / 'logs'}",
            "-cp",
            provision.kafka_classpath(),
            "kafka.Kafka",
            str(node.directory / "server.properties"),
        ]
        node.process = ManagedProcess(
            f"Kafka node {node.node_id} ({node.address})",
            argv,
            node.log_path,
            cwd=node.directory,
            detached=self.detached,
        ).start()

    def wait_node_ready(self, node: KafkaNode, timeout: float = START_TIMEOUT) -> None:
        """Waits until ``node`` answers metadata requests listing every running node."""
        assert node.process is not None
        expected = {n.node_id for n in self.nodes if n.process is not None and n.process.running}

        def ready() -> bool:
            return port_open(node.port) and expected <= self._broker_ids(node.address)

        node.process.wait_for(ready, timeout, f"broker {node.node_id} to serve metadata")

    @staticmethod
    def _broker_ids(address: str) -> set[int]:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": address, "logger": _quiet_logger})
        try:
            metadata = admin.list_topics(timeout=3)
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return set()
        return set(metadata.brokers)

    def node(self, node_id: int) -> KafkaNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no Kafka node {node_id}; nodes are {[n.node_id for n in self.nodes]}")

    def stop_node(self, node_id: int) -> None:
        """Graceful shutdown (SIGTERM) of one node."""
        node = self.node(node_id)
        if node.process is not None:
            node.process.stop()

    def kill_node(self, node_id: int) -> None:
        """kill -9 one node."""
        node = self.node(node_id)
        if node.process is not None:
            node.process.kill()

    def restart_node(self, node_id: int, timeout: float = START_TIMEOUT) -> None:
        """Starts a stopped or killed node again on the same ports and data, and waits for it."""
        node = self.node(node_id)
        if node.process is not None and node.process.running:
            raise InfraError(f"Kafka node {node_id} is still running")
        ensure_port_free(node.port, f"Kafka node {node_id}")
        self._launch(node)
        self.wait_node_ready(node, timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """Stops every node, in parallel: stopped one by one, the last nodes of a three-node
        cluster wait for a controller quorum that is already gone (then get SIGKILL)."""
        running = [n.process for n in self.nodes if n.process is not None and n.process.running]
        for process in running:
            if process.pid is not None:
                signal_group(process.pid, signal.SIGTERM)
        for process in running:
            process.stop(timeout=timeout)

    def pids(self) -> list[int]:
        return [pid for node in self.nodes if node.process for pid in node.process.pids()]


def _random_cluster_id() -> str:
    # Kafka cluster ids are 16 random bytes, base64url without padding (22 characters). One in
    # 32 starts with "-", which kafka-storage's argument parser takes for an option: draw again.
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
