"""``helm/lanner``: lint, render with the default, standalone and distributed values, validate
every manifest against the Kubernetes 1.33 schemas (strict), and check the objects that matter."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from cryptography.fernet import Fernet

from common.settings import Settings
from tests.helm.chart import (
    CHART,
    KUBERNETES_VERSION,
    VALUES,
    Helm,
    Manifests,
    RenderError,
    container,
    env_of,
    matches,
)

VALIDATE = str(Path(sys.executable).parent / "kubernetes-validate")
COMPONENTS = ("executor", "scheduler", "indexer", "webserver", "worker")
# custom resources: no schema in kubernetes-validate's Kubernetes 1.33 set
CUSTOM = {("monitoring.coreos.com/v1", "ServiceMonitor")}


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> dict[str, Manifests]:
    return {name: helm.template(values) for name, values in VALUES.items()}


def test_lint_passes_with_every_values_file(helm: Helm) -> None:
    for name, values in VALUES.items():
        args = ["lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION]
        for path in values:
            args += ["--values", str(path)]
        done = helm.run(*args)
        assert done.returncode == 0, f"helm lint ({name}): {done.stdout}{done.stderr}"
        assert "0 chart(s) failed" in done.stdout, done.stdout


@pytest.mark.parametrize("name", list(VALUES))
def test_every_manifest_validates_strictly_against_kubernetes_1_33(
    rendered: dict[str, Manifests], name: str
) -> None:
    manifests = rendered[name]
    checked = 0
    for doc in manifests.docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            continue
        where = f"{name}: {doc['kind']} {doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 8, f"{name}: only {checked} objects rendered"


@pytest.mark.parametrize("name", list(VALUES))
def test_the_kubernetes_validate_command_passes_the_rendered_chart(
    rendered: dict[str, Manifests], name: str, tmp_path: Path
) -> None:
    """The command a user runs: ``helm template ... | kubernetes-validate --strict``."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(rendered[name].text)
    command = [VALIDATE, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    passed = [line for line in output.splitlines() if " passed for resource " in line]
    unknown = [line for line in output.splitlines() if "Couldn't find schema" in line]
    assert len(passed) == len(rendered[name].docs) - len(unknown), output
    assert all("ServiceMonitor" in line for line in unknown), unknown


def test_distributed_mode_runs_each_component_with_probes_on_the_management_port(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered["distributed"]
    deployments = manifests.of("Deployment")
    for component in COMPONENTS:
        deployment = deployments[f"lanner-{component}"]
        main = container(deployment)
        assert main["args"][:2] == ["server", component], main["args"]
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert ports["management"] == 8081
        for probe, path in (
            ("livenessProbe", "/health/live"),
            ("readinessProbe", "/health/ready"),
            ("startupProbe", "/health/live"),
        ):
            assert main[probe]["httpGet"] == {"path": path, "port": "management"}, probe
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= 30
        assert main["resources"]["requests"]["cpu"]
        # every pod reads the settings and the secrets, and has a stable instance id
        sources = [next(iter(s.values()))["name"] for s in main["envFrom"]]
        assert sources == ["lanner", "lanner-secrets"]
        assert env_of(deployment)["LANNER_INSTANCE_ID"] == {
            "fieldRef": {"fieldPath": "metadata.name"}
        }
        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        assert mounts["data"] == "/var/lib/lanner"
        assert mounts["storage"] == "/var/lib/lanner/storage"
        assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployments["lanner-executor"]["spec"]["replicas"] == 3
    # the executor's RocksDB lives in its data volume; the storage is the shared claim
    volumes = {
        v["name"]: v for v in deployments["lanner-executor"]["spec"]["template"]["spec"]["volumes"]
    }
    assert "emptyDir" in volumes["data"]
    assert volumes["storage"]["persistentVolumeClaim"]["claimName"] == "lanner-storage"
    claim = manifests.get("PersistentVolumeClaim", "lanner-storage")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    # the indexer is its own Deployment: the webserver does not run one
    assert "--no-indexer" in container(deployments["lanner-webserver"])["args"]
    worker = deployments["lanner-worker"]
    assert env_of(worker)["LANNER_WORKER_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert container(worker)["args"] == ["server", "worker", "--threads", "16"]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120
    assert "replicas" not in worker["spec"], "the HPA owns the worker replicas"
    # the webserver behind its Service, and the Ingress with TLS
    service = manifests.get("Service", "lanner")
    assert matches(service["spec"]["selector"], _pod_labels(deployments["lanner-webserver"]))
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    ingress = manifests.get("Ingress", "lanner")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "lanner.internal"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "lanner",
        "port": {"name": "http"},
    }
    assert ingress["spec"]["tls"][0]["secretName"] == "lanner-tls"
    # an existing Secret: the chart creates none
    assert "Secret" not in {d["kind"] for d in manifests.docs}


def test_worker_groups_get_their_own_deployments_and_topics(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered["distributed"]
    deployments = manifests.of("Deployment")
    gpu = deployments["lanner-worker-gpu"]
    assert container(gpu)["args"] == ["server", "worker", "--threads", "4", "--worker-group", "gpu"]
    assert gpu["spec"]["replicas"] == 2
    pod = gpu["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"accelerator": "nvidia"}
    assert container(gpu)["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    # unset values come from `worker`
    assert pod["terminationGracePeriodSeconds"] == 120
    etl = deployments["lanner-worker-etl"]
    assert container(etl)["args"] == [
        "server",
        "worker",
        "--threads",
        "16",
        "--worker-group",
        "etl",
    ]
    assert etl["spec"]["replicas"] == 1
    assert env_of(etl)["LANNER_WORKER_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # no two Deployments select each other's pods
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert matches(selector, _pod_labels(deployment)), name
        for other_name, other in deployments.items():
            if other_name != name:
                assert not matches(selector, _pod_labels(other)), f"{name} selects {other_name}"
    # the topics of the groups are created before the workers start
    job = manifests.get("Job", "lanner-kafka-init")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    args = container(job)["args"]
    assert args[:2] == ["kafka", "init"]
    assert "--worker-group gpu" in " ".join(args) and "--worker-group etl" in " ".join(args)
    assert "--partitions 12" in " ".join(args)
    assert env_of(job)["LANNER_KAFKA_BOOTSTRAP_SERVERS"].startswith("kafka-0.kafka")


def test_each_component_has_a_disruption_budget_and_workers_an_autoscaler(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered["distributed"]
    deployments = manifests.of("Deployment")
    budgets = manifests.of("PodDisruptionBudget")
    assert set(budgets) == set(deployments), "one PodDisruptionBudget per Deployment"
    for name, budget in budgets.items():
        selector = budget["spec"]["selector"]["matchLabels"]
        selected = [d for d, dep in deployments.items() if matches(selector, _pod_labels(dep))]
        assert selected == [name], f"{name} selects {selected}"
        assert budget["spec"]["maxUnavailable"] == 1
    hpa = manifests.get("HorizontalPodAutoscaler", "lanner-worker")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "lanner-worker",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == 70


def test_the_service_monitor_is_off_by_default_and_scrapes_every_pod_when_on(
    rendered: dict[str, Manifests], helm: Helm
) -> None:
    assert "ServiceMonitor" not in {d["kind"] for d in rendered["default"].docs}
    manifests = rendered["distributed"]
    monitor = manifests.get("ServiceMonitor", "lanner")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True  # the flows' `namespace` label stays as it is
    # it selects the metrics Service, whose endpoints are every component's management port
    services = [
        s
        for s in manifests.of("Service").values()
        if matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert [s["metadata"]["name"] for s in services] == ["lanner-metrics"]
    (port,) = services[0]["spec"]["ports"]
    assert (port["name"], port["targetPort"]) == ("metrics", "management")
    for name, deployment in manifests.of("Deployment").items():
        assert matches(services[0]["spec"]["selector"], _pod_labels(deployment)), name
    job = manifests.get("Job", "lanner-kafka-init")
    assert not matches(
        services[0]["spec"]["selector"], job["spec"]["template"]["metadata"]["labels"]
    )
    off = helm.template(VALUES["distributed"], {"metrics.serviceMonitor.enabled": "false"})
    assert "ServiceMonitor" not in {d["kind"] for d in off.docs}


def test_standalone_mode_is_one_deployment_of_lanner_server_standalone(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered["standalone"]
    deployments = manifests.of("Deployment")
    assert list(deployments) == ["lanner"]
    deployment = deployments["lanner"]
    main = container(deployment)
    assert main["args"] == ["server", "standalone"]
    assert main["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "management"}
    assert {p["name"] for p in main["ports"]} == {"http", "management"}
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "lanner-data"
    assert manifests.get("PersistentVolumeClaim", "lanner-data")["spec"]["resources"] == {
        "requests": {"storage": "5Gi"}
    }
    assert "HorizontalPodAutoscaler" not in {d["kind"] for d in manifests.docs}
    assert manifests.get("ConfigMap", "lanner")["data"]["LANNER_QUEUE"] == "kafka"


def test_standalone_embedded_runs_lanner_server_local_on_sqlite(helm: Helm) -> None:
    manifests = helm.template(VALUES["standalone"], {"standalone.embedded": "true"})
    deployment = manifests.get("Deployment", "lanner")
    main = container(deployment)
    assert main["args"] == ["server", "local"]
    # `server local` answers its probes and /metrics on the API port
    assert main["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert [p["name"] for p in main["ports"]] == ["http"]
    data = manifests.get("ConfigMap", "lanner")["data"]
    assert (data["LANNER_QUEUE"], data["LANNER_REPOSITORY"]) == ("sqlite", "sqlite")
    assert "Job" not in {d["kind"] for d in manifests.docs}, "no Kafka to initialise"
    metrics = manifests.get("Service", "lanner-metrics")
    assert metrics["spec"]["ports"][0]["targetPort"] == "http"
    for doc in manifests.docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_config_map_holds_settings_lanner_reads(
    rendered: dict[str, Manifests], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = rendered["standalone"].get("ConfigMap", "lanner")["data"]
    fields = set(Settings.model_fields)
    for key in data:
        assert key.startswith("LANNER_") and key[7:].lower() in fields, key
    for key in list(data):
        monkeypatch.delenv(key, raising=False)
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.queue == "kafka" and settings.repository == "elasticsearch"
    assert settings.kafka_bootstrap_servers == "kafka.kafka.svc:9092"
    assert settings.worker_threads == 16
    assert settings.kafka_consumer_config == {"session.timeout.ms": 30000}
    assert (settings.host, settings.port, settings.metrics_port) == ("0.0.0.0", 8080, 8081)
    assert str(settings.data_dir) == "/var/lib/lanner"
    distributed = rendered["distributed"].get("ConfigMap", "lanner")["data"]
    assert distributed["LANNER_EXECUTOR_STATE_RETENTION_SECONDS"] == "172800"


def test_the_secret_holds_a_fernet_key_and_base64_flow_secrets(
    rendered: dict[str, Manifests],
) -> None:
    secret = rendered["standalone"].get("Secret", "lanner-secrets")["stringData"]
    Fernet(secret["LANNER_ENCRYPTION_KEY"].encode())
    assert base64.b64decode(secret["SECRET_GITHUB_TOKEN"]) == b"not-a-real-token"
    generated = rendered["default"].get("Secret", "lanner-secrets")["stringData"]
    Fernet(generated["LANNER_ENCRYPTION_KEY"].encode())  # generated at install: a valid key


def test_the_dashboard_config_map_holds_the_chart_dashboard(
    rendered: dict[str, Manifests],
) -> None:
    config_map = rendered["default"].get("ConfigMap", "lanner-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["lanner.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "lanner.json").read_text())


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"config.repository": "sqlite"}, "distributed mode needs repository: elasticsearch"),
        ({"config.queue": "sqlite"}, "the chart sets the queue"),
        ({"mode": "cluster"}, "standalone.*distributed"),
        ({"mode": "standalone", "standalone.replicas": "2"}, "use mode: distributed to scale"),
        ({"executor.replica": "3"}, "additional properties 'replica' not allowed"),
        ({"worker.autoscaling.minReplicas": "0"}, "minReplicas"),
        ({"workerGroups[0].key": "GPU"}, "lower-case letters"),
    ],
)
def test_values_the_chart_cannot_deploy_fail_the_render_with_the_fix(
    helm: Helm, sets: dict[str, str], message: str
) -> None:
    with pytest.raises(RenderError, match=message):
        helm.template(sets=sets)


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def test_the_readme_values_file_renders_a_valid_distributed_deployment(
    helm: Helm, tmp_path: Path
) -> None:
    """The values file of the README's Kubernetes recipe, as a new user copies it."""
    readme = (CHART.parents[1] / "README.md").read_text()
    block = readme.split("# my-values.yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "my-values.yaml"
    path.write_text(textwrap.dedent(block))
    manifests = helm.template([path])
    for doc in manifests.docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    data = manifests.get("ConfigMap", "lanner")["data"]
    assert data["LANNER_KAFKA_BOOTSTRAP_SERVERS"].startswith("kafka-0.kafka.kafka.svc:9092")
    assert data["LANNER_ELASTICSEARCH_URL"] == "http://elasticsearch-master.elastic.svc:9200"
    executor = manifests.get("Deployment", "lanner-executor")
    assert container(executor)["image"] == "registry.example.com/lanner:0.1.0"
    assert manifests.get("Ingress", "lanner")["spec"]["rules"][0]["host"] == "lanner.example.com"
