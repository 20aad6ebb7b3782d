"""Elasticsearch 8 nodes on 127.0.0.1: one JVM per node (plus the launcher's small JVM).

Each node has its own config dir (a copy of the distribution's, with our ``elasticsearch.yml``
and ``jvm.options``), data, logs and a console log file under the cluster's base directory.
Security is off (plain HTTP, no passwords); the node binds to loopback, which keeps it in
development mode (no bootstrap checks).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import provision
from .errors import InfraError
from .processes import ManagedProcess, ensure_port_free, free_ports, signal_group

START_TIMEOUT = 180.0

# Elasticsearch refuses to run as root, and CI containers often are root. As root we start it in
# a user namespace where root is mapped to an ordinary uid: the node sees itself as uid 1000, and
# the kernel still lets it read and write the root-owned cache and data directories it owns there.
_AS_ROOT_PREFIX = (
    ["unshare", "--user", "--map-user=1000", "--map-group=1000", "--"] if os.geteuid() == 0 else []
)


@dataclass
class EsNode:
    index: int
    http_port: int
    transport_port: int
    directory: Path
    process: ManagedProcess | None = None

    @property
    def name(self) -> str:
        return f"node-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "elasticsearch.log"


@dataclass
class ElasticsearchCluster:
    """``ElasticsearchCluster(base_dir, size=3).start()``; ``url``/``urls`` for clients."""

    base_dir: Path
    size: int = 1
    heap: str = ""
    detached: bool = False
    cluster_name: str = field(default_factory=lambda: "lanner-test-" + uuid.uuid4().hex[:8])
    nodes: list[EsNode] = field(default_factory=list)
    _bootstrapped: bool = False

    def __post_init__(self) -> None:
        if not self.heap:
            self.heap = "512m" if self.size == 1 else "384m"
        if not self.nodes:
            ports = free_ports(2 * self.size)
            self.nodes = [
                EsNode(i + 1, ports[2 * i], ports[2 * i + 1], self.base_dir / f"es-{i + 1}")
                for i in range(self.size)
            ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self, timeout: float = START_TIMEOUT) -> ElasticsearchCluster:
        if not (provision.elasticsearch_home() / ".complete").exists():
            raise InfraError(
                "Elasticsearch is not in the cache: run `python -m tests.infra fetch` first"
            )
        for node in self.nodes:
            ensure_port_free(node.http_port, f"Elasticsearch {node.name} (HTTP)")
            ensure_port_free(node.transport_port, f"Elasticsearch {node.name} (transport)")
            self._configure(node)
        for node in self.nodes:
            self._launch(node)
        for node in self.nodes:
            self.wait_node_ready(node, timeout)
        self._bootstrapped = True
        return self

    def _configure(self, node: EsNode) -> None:
        config = node.directory / "config"
        if not config.exists():
            shutil.copytree(provision.elasticsearch_home() / "config", config)
        for sub in ("data", "logs", "tmp"):
            (node.directory / sub).mkdir(parents=True, exist_ok=True)
        settings: dict[str, Any] = {
            "cluster.name": self.cluster_name,
            "node.name": node.name,
            "path.data": str(node.directory / "data"),
            "path.logs": str(node.directory / "logs"),
            "network.host": "127.0.0.1",
            "http.port": node.http_port,
            "transport.port": node.transport_port,
            "xpack.security.enabled": False,
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "indices.breaker.total.use_real_memory": False,
            "action.destructive_requires_name": False,
        }
        if self.size == 1:
            settings["discovery.type"] = "single-node"
        else:
            settings["discovery.seed_hosts"] = [f"127.0.0.1:{n.transport_port}" for n in self.nodes]
            if not self._bootstrapped:
                settings["cluster.initial_master_nodes"] = [n.name for n in self.nodes]
        (config / "elasticsearch.yml").write_text(
            "".join(f"{key}: {json.dumps(value)}\n" for key, value in settings.items())
        )
        (config / "jvm.options").write_text(
            "\n".join(
                [
                    f"-Xms{self.heap}",
                    f"-Xmx{self.heap}",
                    "-XX:+UseG1GC",
                    "-Djava.io.tmpdir=${ES_TMPDIR}",
                    "-XX:+ExitOnOutOfMemoryError",
                    f"-XX:ErrorFile={node.directory / 'logs' / 'hs_err_pid%p.log'}",
                    "",
                ]
            )
        )

    def _launch(self, node: EsNode) -> None:
        home = provision.elasticsearch_home()
        env = {
            "ES_JAVA_HOME": str(provision.java_home()),
            "ES_PATH_CONF": str(node.directory / "config"),
            "ES_TMPDIR": str(node.directory / "tmp"),
            "CLI_JAVA_OPTS": "-Xms4m -Xmx64m",
        }
        for var in ("JAVA_HOME", "ES_JAVA_OPTS", "JAVA_TOOL_OPTIONS"):
            env[var] = ""
        node.process = ManagedProcess(
            f"Elasticsearch {node.name} ({node.url})",
            [
                *_AS_ROOT_PREFIX,
                str(home / "bin" / "elasticsearch"),
                "-p",
                str(node.directory / "es.pid"),
            ],
            node.log_path,
            env=env,
            cwd=node.directory,
            detached=self.detached,
        ).start()

    def wait_node_ready(self, node: EsNode, timeout: float = START_TIMEOUT) -> None:
        """Waits until ``node`` answers and sees every running node in a non-red cluster."""
        assert node.process is not None
        expected = sum(1 for n in self.nodes if n.process is not None and n.process.running)

        def ready() -> bool:
            health = _get_json(f"{node.url}/_cluster/health?timeout=1s")
            return (
                health is not None
                and health.get("number_of_nodes") == expected
                and health.get("status") in ("green", "yellow")
            )

        node.process.wait_for(ready, timeout, f"{node.name} to join a {expected}-node cluster")

    def node(self, index: int) -> EsNode:
        for node in self.nodes:
            if node.index == index:
                return node
        raise KeyError(f"no Elasticsearch node {index}")

    def server_pid(self, index: int) -> int | None:
        """The pid of the node's server JVM (the launcher's child), from its pid file."""
        pid_file = self.node(index).directory / "es.pid"
        try:
            return int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def stop_node(self, index: int) -> None:
        node = self.node(index)
        if node.process is not None:
            node.process.stop(timeout=60)

    def kill_node(self, index: int) -> None:
        """kill -9 the node (launcher and server JVM)."""
        node = self.node(index)
        if node.process is not None:
            node.process.kill()

    def restart_node(self, index: int, timeout: float = START_TIMEOUT) -> None:
        node = self.node(index)
        if node.process is not None and node.process.running:
            raise InfraError(f"Elasticsearch {node.name} is still running")
        ensure_port_free(node.http_port, f"Elasticsearch {node.name} (HTTP)")
        self._configure(node)
        self._launch(node)
        self.wait_node_ready(node, timeout)

    def stop(self) -> None:
        """Stops every node; they shut down in parallel (SIGTERM to all, then wait for each)."""
        running = [n.process for n in self.nodes if n.process is not None and n.process.running]
        for process in running:
            if process.pid is not None:
                signal_group(process.pid, signal.SIGTERM)
        for process in running:
            process.stop(timeout=60)

    def pids(self) -> list[int]:
        return [pid for node in self.nodes if node.process for pid in node.process.pids()]


def _get_json(url: str) -> dict[str, Any] | None:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def drop_indices(client: Any, prefix: str) -> None:
    """Deletes the indices and index templates named ``<prefix>...`` (a test's own)."""
    from common.repository.elasticsearch_client import KINDS, index_name

    client.indices.delete(index=prefix + "*", allow_no_indices=True, expand_wildcards="all")
    for kind in KINDS:
        client.options(ignore_status=404).indices.delete_index_template(
            name=index_name(kind, prefix)
        )
