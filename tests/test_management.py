"""The management port every component serves: probes and Prometheus metrics."""

from __future__ import annotations

import httpx

from common.management import ManagementServer


def test_probes_and_metrics_are_served_and_readiness_says_why_not() -> None:
    problem: list[str] = []
    server = ManagementServer(
        "executor", 0, "127.0.0.1", ready=lambda: problem[0] if problem else None
    )
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/health/live").json() == {"status": "UP", "component": "executor"}
        assert httpx.get(f"{base}/health/ready").status_code == 200
        problem.append("Kafka unreachable at 127.0.0.1:1")
        ready = httpx.get(f"{base}/health/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "Kafka unreachable at 127.0.0.1:1"
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200 and "process_cpu_seconds_total" in metrics.text
        missing = httpx.get(f"{base}/nothing")
        assert missing.status_code == 404 and "/health/ready" in missing.json()["message"]
    finally:
        server.stop()
