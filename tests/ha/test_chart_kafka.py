"""The chart, run for real: ``helm template`` renders it with this test's Kafka and
Elasticsearch, then the kafka-init Job and every Deployment run as local processes with the
arguments and environment (ConfigMap, Secret, downward API) their pods would get. Each becomes
ready on the port and path of its readiness probe, and an execution created through the API
succeeds, reading a flow secret of the chart's Secret.

What differs from a cluster is only what one machine needs: ports (every process its own), the
bind address (127.0.0.1), and the data directories (one per pod; the internal storage shared as
the chart's ReadWriteMany volume is).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helm.chart import VALUES, Helm, Manifests, container, pod_env
from tests.infra.fixtures import StartLanner
from tests.infra.processes import ManagedProcess, free_ports, http_ok
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

READY_SECONDS = 180.0
FLOW = """\
id: hello
namespace: ops.chart
tasks:
  # the flow secret of the chart's Secret (outputs would mask it: compare it here)
  - id: check-secret
    type: lanner.core.execution.Fail
    condition: "{{ secret('GREETING') != 'hello' }}"
    errorMessage: the flow secret GREETING is not the chart's
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: "hello from {{ execution.id }}"
"""


class ChartRun:
    """The rendered chart's workloads as processes of this machine."""

    def __init__(self, manifests: Manifests, start: StartLanner, base: Path) -> None:
        self.manifests = manifests
        self.start = start
        self.base = base
        self.storage = base / "storage"
        self.storage.mkdir()
        self.pods: dict[str, tuple[ManagedProcess, str]] = {}
        self.api = ""

    def run_job(self, name: str) -> None:
        job = self.manifests.get("Job", name)
        env = _local(pod_env(self.manifests, job, name), {})
        process = self.start(container(job)["args"], env=env, name=name)
        wait_until(lambda: process.returncode is not None, 120, f"{name} to finish")
        assert process.returncode == 0, process.log_path.read_text()[-3000:]

    def run_pod(self, deployment_name: str, pod: str) -> None:
        deployment = self.manifests.get("Deployment", deployment_name)
        data_dir = self.base / "pods" / pod
        data_dir.mkdir(parents=True)
        # the shared volume; standalone keeps its storage in its own data volume
        if any(m["name"] == "storage" for m in container(deployment)["volumeMounts"]):
            (data_dir / "storage").symlink_to(self.storage)
        management, http = free_ports(2)
        env = _local(
            pod_env(self.manifests, deployment, pod),
            {
                "LANNER_DATA_DIR": str(data_dir),
                "LANNER_METRICS_PORT": str(management),
                "LANNER_PORT": str(http),
            },
        )
        process = self.start(container(deployment)["args"], env=env, name=pod)
        probe = container(deployment)["readinessProbe"]["httpGet"]
        port = {"management": management, "http": http}[probe["port"]]
        self.pods[pod] = (process, f"http://127.0.0.1:{port}{probe['path']}")
        if "http" in {p["name"] for p in container(deployment)["ports"]} and not self.api:
            self.api = f"http://127.0.0.1:{http}/api/v1"

    def wait_ready(self) -> None:
        for process, ready in self.pods.values():
            process.wait_for(partial(http_ok, ready), READY_SECONDS, f"ready at {ready}")

    def run_an_execution(self) -> dict[str, Any]:
        with httpx.Client(base_url=self.api, timeout=30) as client:
            deployed = client.post(
                "/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"}
            )
            assert deployed.status_code == 200, deployed.text
            wait_until(
                lambda: client.get("/flows/ops.chart/hello").status_code == 200,
                60,
                "the flow in the repository",
            )
            created = client.post("/executions/ops.chart/hello")
            assert created.status_code == 200, created.text
            execution_id = created.json()["id"]

            def ended() -> dict[str, Any] | None:
                found = client.get(f"/executions/{execution_id}")
                body: dict[str, Any] | None = found.json() if found.status_code == 200 else None
                return body if body and body["state"]["current"] in ("SUCCESS", "FAILED") else None

            execution = wait_until(ended, 120, "the execution to end")
        assert execution["state"]["current"] == "SUCCESS", execution
        outputs = execution["taskRunList"][-1]["outputs"]
        assert outputs == {"value": f"hello from {execution_id}"}
        for pod, (process, _) in self.pods.items():
            process.check_running(f"the test ({pod})")
        return execution


def _values(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "test-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _backends(kafka: str, elasticsearch: str, unique_name: str) -> dict[str, Any]:
    return {
        "kafka_bootstrap_servers": kafka,
        "kafka_topic_prefix": unique_name + ".",
        "elasticsearch_url": elasticsearch,
        "elasticsearch_index_prefix": unique_name + "_",
        "executor_session_timeout_seconds": 3,
    }


def _local(env: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    """A pod's environment on this machine: bound to 127.0.0.1, with ``overrides``."""
    return {**env, "LANNER_HOST": "127.0.0.1", **overrides}


@pytest.mark.elasticsearch
def test_the_distributed_chart_runs_and_serves_an_execution(
    kafka_bootstrap_servers: str,
    elasticsearch_url: str,
    unique_name: str,
    lanner_process: StartLanner,
    helm_binary: Path,
    tmp_path: Path,
) -> None:
    values = _values(
        tmp_path,
        {
            "config": _backends(kafka_bootstrap_servers, elasticsearch_url, unique_name),
            # a Secret of the chart's own (the ci file names an existing one)
            "secrets": {"existingSecret": "", "flowSecrets": {"GREETING": "hello"}},
            "workerGroups": [{"key": "gpu", "replicas": 1}],
            "kafkaInit": {"partitions": 2},  # the session's broker is shared: few partitions
        },
    )
    manifests = Helm(helm_binary).template([*VALUES["distributed"], values])
    run = ChartRun(manifests, lanner_process, tmp_path)
    run.run_job("lanner-kafka-init")  # the pre-install hook first: the topics
    for name in manifests.of("Deployment"):
        # two executors (static membership by pod name), one pod of everything else
        for i in range(2 if name == "lanner-executor" else 1):
            run.run_pod(name, f"{name}-{i}")
    run.wait_ready()
    assert sorted(run.pods) == sorted(
        f"lanner-{c}-{i}"
        for c in ("executor", "scheduler", "indexer", "webserver", "worker", "worker-gpu")
        for i in range(2 if c == "executor" else 1)
    )
    execution = run.run_an_execution()
    # it ran on a worker of the default group, whose id is its pod name
    assert execution["taskRunList"][-1]["attempts"][-1]["workerId"] == "lanner-worker-0"


@pytest.mark.elasticsearch
def test_the_standalone_chart_runs_lanner_server_standalone(
    kafka_bootstrap_servers: str,
    elasticsearch_url: str,
    unique_name: str,
    lanner_process: StartLanner,
    helm_binary: Path,
    tmp_path: Path,
) -> None:
    values = _values(
        tmp_path,
        {
            "config": _backends(kafka_bootstrap_servers, elasticsearch_url, unique_name),
            "secrets": {"flowSecrets": {"GREETING": "hello"}},
            "kafkaInit": {"partitions": 2},
        },
    )
    manifests = Helm(helm_binary).template([*VALUES["standalone"], values])
    run = ChartRun(manifests, lanner_process, tmp_path)
    run.run_job("lanner-kafka-init")
    assert list(manifests.of("Deployment")) == ["lanner"]
    run.run_pod("lanner", "lanner-0")
    run.wait_ready()
    run.run_an_execution()


def test_the_embedded_standalone_chart_runs_lanner_server_local(
    lanner_process: StartLanner, helm_binary: Path, tmp_path: Path
) -> None:
    values = _values(tmp_path, {"secrets": {"flowSecrets": {"GREETING": "hello"}}})
    manifests = Helm(helm_binary).template(
        [*VALUES["standalone"], values], {"standalone.embedded": "true"}
    )
    assert "Job" not in {d["kind"] for d in manifests.docs}
    run = ChartRun(manifests, lanner_process, tmp_path)
    run.run_pod("lanner", "lanner-0")
    run.wait_ready()
    run.run_an_execution()
