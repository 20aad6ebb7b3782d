"""Lanner's high-availability deployment for tests: every component its own process on Kafka.

``KafkaDeployment(servers, prefix, base).start(executors=1, workers=1)`` creates the topics
(``lanner kafka init``), starts ``lanner server executor`` / ``worker`` / ``webserver`` (with its
indexer, on a SQLite repository) sharing one data directory (internal storage), and waits until
the webserver is ready. ``kill(name)`` is kill -9; ``stop()`` stops everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner

from tests.infra.processes import ManagedProcess, free_ports, http_ok, start_lanner

READY_SECONDS = 120.0


class KafkaDeployment:
    def __init__(
        self,
        servers: str,
        prefix: str,
        base: Path,
        *,
        env: Mapping[str, str] | None = None,
        config: Path | None = None,
        partitions: int = 4,
    ) -> None:
        self.servers = servers
        self.prefix = prefix
        self.base = base
        self.extra_env = dict(env or {})
        self.config = config
        self.partitions = partitions
        self.processes: dict[str, ManagedProcess] = {}
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"

    def env(self, name: str) -> dict[str, str]:
        return {
            "LANNER_QUEUE": "kafka",
            "LANNER_REPOSITORY": "sqlite",
            "LANNER_KAFKA_BOOTSTRAP_SERVERS": self.servers,
            "LANNER_KAFKA_TOPIC_PREFIX": self.prefix,
            "LANNER_DATA_DIR": str(self.base / "data"),
            "LANNER_METRICS_PORT": "0",
            "LANNER_INSTANCE_ID": name,
            "LANNER_WORKER_ID": name,
            "LANNER_EXECUTOR_SESSION_TIMEOUT_SECONDS": "3",
            **self.extra_env,
        }

    def init_topics(self, worker_groups: tuple[str, ...] = ()) -> None:
        from common.cli.kafka import kafka

        args = ["init", "--bootstrap-servers", self.servers, "--prefix", self.prefix]
        args += ["--partitions", str(self.partitions)]
        for group in worker_groups:
            args += ["--worker-group", group]
        result = CliRunner().invoke(kafka, args)
        assert result.exit_code == 0, result.output

    def start_component(self, role: str, name: str, *args: str) -> ManagedProcess:
        argv = ["server", role, *args]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        proc = start_lanner(
            argv, self.base / "logs" / f"{name}.log", env=self.env(name), cwd=self.base, name=name
        )
        self.processes[name] = proc
        return proc

    def start(self, executors: int = 1, workers: int = 1) -> KafkaDeployment:
        self.init_topics()
        for i in range(1, executors + 1):
            self.start_component("executor", f"executor-{i}")
        for i in range(1, workers + 1):
            self.start_component("worker", f"worker-{i}")
        web = self.start_component("webserver", "webserver", "--port", str(self.port))
        web.wait_for(lambda: http_ok(self.url + "/health/ready"), READY_SECONDS, "ready")
        return self

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def logs(self) -> str:
        return ", ".join(str(p.log_path) for p in self.processes.values())

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()
