"""A real Prometheus (Debian's package) scrapes every component of a Kafka deployment through
its management port; after a load of executions, PromQL counts them by final state.

The components run as separate processes, as the chart's distributed mode runs them: executor,
worker, scheduler, indexer, and the webserver without its own indexer. The repository is SQLite
in the shared data directory (one machine); the queue is the session's Kafka broker.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ha.cluster import Cluster
from tests.helm.chart import CHART
from tests.infra.fixtures import StartLanner
from tests.infra.processes import ManagedProcess, free_ports, http_ok
from tests.infra.prometheus import PrometheusServer
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

READY_SECONDS = 120.0
ENDED_SECONDS = 180.0
NAMESPACE = "ops.metrics"
FLOWS = {
    "ok": """\
id: ok
namespace: ops.metrics
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hello {{ execution.id }}
""",
    "broken": """\
id: broken
namespace: ops.metrics
tasks:
  - id: fail
    type: lanner.core.execution.Fail
    errorMessage: broken on purpose
""",
}
LOAD = {"ok": 6, "broken": 3}  # executions created per flow
COMPONENTS = ("executor", "worker", "scheduler", "indexer", "webserver")


def test_prometheus_scrapes_every_component_and_counts_the_executions_by_state(
    cluster: Cluster, lanner_process: StartLanner, tmp_path: Path
) -> None:
    ports = dict(zip([*COMPONENTS, "api"], free_ports(len(COMPONENTS) + 1), strict=True))
    processes: dict[str, ManagedProcess] = {}
    for component in COMPONENTS:
        args = ["server", component]
        if component == "webserver":
            args += ["--no-indexer", "--port", str(ports["api"])]
        env = {**cluster.env(component), "LANNER_METRICS_PORT": str(ports[component])}
        processes[component] = lanner_process(args, env=env, name=component)
    for component, process in processes.items():
        ready = f"http://127.0.0.1:{ports[component]}/health/ready"
        process.wait_for(partial(http_ok, ready), READY_SECONDS, "ready")

    targets = {c: f"127.0.0.1:{ports[c]}" for c in COMPONENTS}
    prometheus = PrometheusServer(tmp_path / "prometheus", targets).start()
    try:
        # every management port is a healthy scrape target
        wait_until(
            lambda: prometheus.active_targets() == dict.fromkeys(COMPONENTS, "up"),
            60,
            "every component to be scraped (up)",
            interval=0.5,
            diagnose=lambda: f"targets: {prometheus.active_targets()}",
        )
        expected = _load(f"http://127.0.0.1:{ports['api']}/api/v1", processes)

        query = (
            f'sum by (state) (lanner_executor_executions_ended_total{{namespace="{NAMESPACE}"}})'
        )
        counted = wait_until(
            lambda: (found := prometheus.by_label(query, "state")) == expected and found,
            60,
            f"Prometheus to count the ended executions by state ({expected})",
            interval=0.5,
            diagnose=lambda: f"{query} -> {prometheus.by_label(query, 'state')}",
        )
        assert counted == {"SUCCESS": 6.0, "FAILED": 3.0}
        by_flow = prometheus.by_label(
            f'sum by (flow) (lanner_executor_executions_created_total{{namespace="{NAMESPACE}"}})',
            "flow",
        )
        assert by_flow == {"ok": 6.0, "broken": 3.0}
        # each component's own metrics reached Prometheus, labelled with the component
        own = {
            "executor": "lanner_executor_inputs_total",
            "worker": "lanner_worker_task_runs_total",
            "scheduler": "lanner_scheduler_loop_duration_seconds_count",
            "indexer": "lanner_indexer_records_total",
            "webserver": "lanner_webserver_http_requests_total",
        }
        for component, metric in own.items():
            # each target is scraped on its own schedule: the executor's counts being there says
            # nothing of the worker's yet (seen once: the worker's series not scraped so far)
            own_query = f"sum by (component) ({metric})"
            wait_until(
                lambda q=own_query, c=component: prometheus.by_label(q, "component").get(c, 0) > 0,
                30,
                f"{metric} of the {component} in Prometheus",
                interval=0.5,
                diagnose=lambda q=own_query: f"{q} -> {prometheus.by_label(q, 'component')}",
            )
        # the worker's own count of the same runs (scraped on its own schedule: waited for)
        runs = 'sum by (state) (lanner_worker_task_runs_total{component="worker"})'
        wait_until(
            lambda: (
                {k: v for k, v in prometheus.by_label(runs, "state").items() if k != "RUNNING"}
                == {"SUCCESS": 6.0, "FAILED": 3.0}
            ),
            30,
            "the worker's task runs by state in Prometheus",
            interval=0.5,
            diagnose=lambda: f"{runs} -> {prometheus.by_label(runs, 'state')}",
        )
        # every query of the chart's Grafana dashboard is valid PromQL for this Prometheus (a
        # query it refuses raises here) and, once a few scrapes hold the load (a rate needs two
        # samples), every panel shows data but the Elasticsearch repository's (this one is SQLite)
        queries = dashboard_queries()
        ended_panel = next(e for e in queries if e.startswith("sum by (state) (increase("))
        last: dict[str, list[dict[str, Any]]] = {}

        def dashboard_shows_the_load() -> bool:
            last.update({expr: prometheus.query(expr) for expr in queries})
            states = {s["metric"]["state"] for s in last[ended_panel]}
            return states == {"SUCCESS", "FAILED"} and not _empty(last)

        wait_until(
            dashboard_shows_the_load,
            60,
            "every dashboard panel to show data",
            interval=1.0,
            diagnose=lambda: f"empty: {_empty(last)}; ended: {last.get(ended_panel)}",
        )
    finally:
        prometheus.stop()
    for component, process in processes.items():
        process.check_running(f"the test ({component})")


def _empty(answered: dict[str, list[dict[str, Any]]]) -> list[str]:
    return sorted(e for e, samples in answered.items() if not samples and "repository_" not in e)


def dashboard_queries() -> list[str]:
    """The PromQL of every panel of the chart's dashboard, Grafana's variables filled in."""
    dashboard = json.loads((CHART / "dashboards" / "lanner.json").read_text())
    variables = {"$__rate_interval": "1m", "$__range": "10m", "$flow_namespace": ".*"}
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"a Grafana variable left in {expr}"
            queries.append(expr)
    assert queries
    return queries


def _load(api_url: str, processes: dict[str, ManagedProcess]) -> dict[str, float]:
    """Deploys the flows and creates ``LOAD`` executions through the API; waits until the
    repository shows them all ended, and returns their count by final state."""
    with httpx.Client(base_url=api_url, timeout=30) as api:
        for flow_id, source in FLOWS.items():
            deployed = api.post(
                "/flows", content=source, headers={"Content-Type": "application/x-yaml"}
            )
            assert deployed.status_code == 200, deployed.text
            # the indexer writes the flow into the repository the webserver reads
            indexed = partial(_answers, api, f"/flows/{NAMESPACE}/{flow_id}")
            processes["indexer"].wait_for(indexed, 60, f"flow {flow_id} indexed")
        ids = []
        for flow_id, count in LOAD.items():
            for _ in range(count):
                created = api.post(f"/executions/{NAMESPACE}/{flow_id}")
                assert created.status_code == 200, created.text
                ids.append(created.json()["id"])

        def states() -> dict[str, str]:
            found = {}
            for execution_id in ids:
                answer = api.get(f"/executions/{execution_id}")
                if answer.status_code == 200:
                    found[execution_id] = answer.json()["state"]["current"]
            return found

        def all_ended() -> dict[str, str]:
            for process in processes.values():
                process.check_running("the load")
            found = states()
            ended = {i: s for i, s in found.items() if s in ("SUCCESS", "FAILED", "WARNING")}
            return ended if len(ended) == len(ids) else {}

        ended = wait_until(
            all_ended,
            ENDED_SECONDS,
            f"{len(ids)} executions ended",
            interval=0.5,
            diagnose=lambda: f"states: {Counter(states().values())}",
        )
    return {state: float(n) for state, n in Counter(ended.values()).items()}


def _answers(api: httpx.Client, path: str) -> bool:
    return api.get(path).status_code == 200
