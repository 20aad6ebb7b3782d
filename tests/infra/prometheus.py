"""Prometheus in tests: reading a component's /metrics text, and a real Prometheus server
(Debian's package) scraping the components' management ports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from .processes import ManagedProcess, free_ports, http_ok
from .tools import prometheus_path


def sample_value(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly ``labels`` in ``text`` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, value = line.rsplit(" ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if sample.split("{")[0] == name and found == labels:
            return float(value)
    return 0.0


class PrometheusServer:
    """Debian's ``prometheus`` scraping ``targets`` (component -> ``host:port``) every second.

    ``start()`` writes ``prometheus.yml``, starts the server on a free port with its storage in
    ``base`` and waits until it is ready; ``query(expr)`` runs an instant PromQL query through the
    HTTP API; ``stop()`` stops it.
    """

    def __init__(self, base: Path, targets: Mapping[str, str], interval: str = "1s") -> None:
        self.base = base
        self.targets = dict(targets)
        self.interval = interval
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = base / "prometheus.yml"
        self.process: ManagedProcess | None = None

    def config(self) -> dict[str, Any]:
        """One scrape job, one static target per component, labelled ``component``."""
        return {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "scrape_configs": [
                {
                    "job_name": "lanner",
                    "scrape_interval": self.interval,
                    "scrape_timeout": self.interval,
                    "metrics_path": "/metrics",
                    "static_configs": [
                        {"targets": [address], "labels": {"component": component}}
                        for component, address in sorted(self.targets.items())
                    ],
                }
            ],
        }

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        self.base.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        argv = [
            str(prometheus_path()),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.base / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        self.process = ManagedProcess("prometheus", argv, self.base / "prometheus.log").start()
        self.process.wait_for(lambda: http_ok(self.url + "/-/ready"), timeout, "ready")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def _get(self, path: str, **params: str) -> Any:
        if self.process is not None:
            self.process.check_running(f"GET {path}")
        response = httpx.get(self.url + path, params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: ``[{"metric": {labels}, "value": [ts, "text"]}, ...]``."""
        data = self._get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def by_label(self, expr: str, label: str) -> dict[str, float]:
        """The query's samples keyed by one label's value."""
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in self.query(expr)}

    def active_targets(self) -> dict[str, str]:
        """component -> health (``up`` / ``down`` / ``unknown``) of the scrape targets."""
        data = self._get("/api/v1/targets", state="active")
        return {t["labels"]["component"]: t["health"] for t in data["activeTargets"]}
