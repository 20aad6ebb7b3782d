"""The benchmark's Kafka mode: Kafka on this machine, then the components as processes (one
executor, one worker, a webserver with its indexer), and where their CPU goes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.infra.deployment import KafkaDeployment
from tests.infra.kafka import KafkaCluster
from tests.infra.processes import ManagedProcess

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (live ones only)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


@dataclass
class CpuMeter:
    """CPU seconds per component between ``mark()`` and ``used()``."""

    processes: dict[str, ManagedProcess]

    def __post_init__(self) -> None:
        self._start: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: cpu_seconds(p.pids()) for name, p in self.processes.items()}

    def mark(self) -> None:
        self._start = self._now()

    def used(self) -> dict[str, float]:
        now = self._now()
        return {name: now[name] - self._start.get(name, 0.0) for name in now}


@contextmanager
def kafka_deployment(base: Path, progress: object) -> Iterator[KafkaDeployment]:
    say = progress if callable(progress) else print
    cluster = KafkaCluster(base / "kafka", 1)
    say("starting Kafka (one broker on this machine)")
    cluster.start()
    deployment = KafkaDeployment(cluster.bootstrap_servers, "bench.", base / "lanner")
    try:
        say("starting an executor, a worker and a webserver with its indexer")
        deployment.start(executors=1, workers=1)
        for node in cluster.nodes:
            if node.process is not None:
                deployment.processes[f"kafka-{node.node_id}"] = node.process
        yield deployment
    finally:
        say("stopping the Kafka deployment")
        for name in [n for n in deployment.processes if n.startswith("kafka-")]:
            del deployment.processes[name]
        deployment.stop()
        cluster.stop()
