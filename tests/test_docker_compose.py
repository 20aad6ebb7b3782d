"""docker-compose.kafka.yml declares every Lanner component with its command, environment,
health check and start order (no Docker engine needed: the file is parsed, not run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.kafka.yml"

# service -> the `lanner` command it runs
COMPONENTS = {
    "executor": ["server", "executor"],
    "worker-1": ["server", "worker"],
    "worker-2": ["server", "worker"],
    "scheduler": ["server", "scheduler"],
    "indexer": ["server", "indexer"],
    "webserver": ["server", "webserver"],
}
NEEDS_ELASTICSEARCH = {"indexer", "webserver"}
NEEDS_EXECUTOR = {"worker-1", "worker-2", "scheduler", "webserver"}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    return dict(compose["services"])


def _depends(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on", {})
    assert isinstance(depends, dict), "depends_on must use the long form with conditions"
    return {name: spec["condition"] for name, spec in depends.items()}


def test_kafka_runs_in_kraft_mode_with_a_native_health_check(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_elasticsearch_8_runs_without_security(services: dict[str, Any]) -> None:
    es = services["elasticsearch"]
    assert es["image"].startswith("docker.elastic.co/elasticsearch/elasticsearch:8.14.")
    assert es["environment"]["xpack.security.enabled"] == "false"
    assert "_cluster/health" in " ".join(es["healthcheck"]["test"])


def test_topics_are_created_before_any_component(services: dict[str, Any]) -> None:
    init = services["kafka-init"]
    assert init["command"] == ["kafka", "init"]
    assert _depends(init) == {"kafka": "service_healthy"}


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_every_component_is_declared_completely(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["build"]["dockerfile"] == "Dockerfile"
    assert service["command"][: len(COMPONENTS[name])] == COMPONENTS[name]

    env = service["environment"]
    assert env["LANNER_QUEUE"] == "kafka"
    assert env["LANNER_REPOSITORY"] == "elasticsearch"
    assert env["LANNER_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["LANNER_ELASTICSEARCH_URL"] == "http://elasticsearch:9200"

    health = " ".join(service["healthcheck"]["test"])
    assert "/health/ready" in health
    port = "8080" if name == "webserver" else env["LANNER_METRICS_PORT"]
    assert f"127.0.0.1:{port}/health/ready" in health

    depends = _depends(service)
    assert depends["kafka"] == "service_healthy"
    assert depends["kafka-init"] == "service_completed_successfully"
    if name in NEEDS_ELASTICSEARCH:
        assert depends["elasticsearch"] == "service_healthy"
    if name in NEEDS_EXECUTOR:
        assert depends["executor"] == "service_healthy"


def test_every_dependency_exists_and_can_become_healthy(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency, condition in _depends(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                check = services[dependency].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {dependency} to be healthy but it has no health check"
                )


def test_every_component_shares_the_data_dir_with_the_encryption_key(
    services: dict[str, Any],
) -> None:
    """SECRET inputs are encrypted by the webserver and decrypted by workers: one key for all,
    from LANNER_ENCRYPTION_KEY or the encryption.key file of one shared data dir."""
    for name in COMPONENTS:
        service = services[name]
        data_dir = service["environment"]["LANNER_DATA_DIR"]
        assert f"lanner-data:{data_dir}" in service["volumes"], name
        assert service["environment"]["LANNER_ENCRYPTION_KEY"] == "${LANNER_ENCRYPTION_KEY:-}"


def test_two_workers_with_distinct_ids(services: dict[str, Any]) -> None:
    ids = {services[w]["environment"]["LANNER_WORKER_ID"] for w in ("worker-1", "worker-2")}
    assert ids == {"worker-1", "worker-2"}


def test_the_image_installs_the_ha_extra_on_python_3_11_slim() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install '.[ha]'" in dockerfile
    assert 'ENTRYPOINT ["lanner"]' in dockerfile


def test_the_image_builds_the_web_ui_in_its_own_stage() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "AS ui" in dockerfile
    assert "npm ci" in dockerfile
    assert "COPY --from=ui /src/webserver/static/ui webserver/static/ui" in dockerfile


def _lanner_commands(services: dict[str, Any]) -> list[list[str]]:
    """Every `lanner` command line the compose file runs (the image's entrypoint is `lanner`),
    with its options, once each."""
    commands = []
    for service in services.values():
        if "command" in service and service.get("build"):
            words = [str(word) for word in service["command"]]
            if words not in commands:
                commands.append(words)
    return commands


def test_the_compose_file_runs_lanner_commands(services: dict[str, Any]) -> None:
    commands = _lanner_commands(services)
    # every component and the topic creation: the parametrised check below covers all of them
    assert ["kafka", "init"] in commands
    paths = {tuple(c[: len(path)]) for c in commands for path in COMPONENTS.values()}
    assert {tuple(path) for path in COMPONENTS.values()} <= paths


@pytest.mark.parametrize(
    "command",
    _lanner_commands(dict(yaml.safe_load(COMPOSE.read_text())["services"])),
    ids=" ".join,
)
def test_every_command_the_compose_file_runs_exists(command: list[str]) -> None:
    """`lanner <command> --help` exits 0, in a process of its own as the container runs it; the
    command's options are given too, so an option it does not know fails as well."""
    import subprocess

    from tests.infra.processes import lanner_executable

    result = subprocess.run(
        [str(lanner_executable()), *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, (
        f"`lanner {' '.join(command)} --help` exited {result.returncode}: "
        f"{(result.stderr or result.stdout).strip()[-500:]}"
    )


def _lanner_variables(services: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for service in services.values():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        names |= {name for name in environment if name.startswith("LANNER_")}
    return names


def test_every_lanner_variable_of_the_compose_file_is_a_setting(services: dict[str, Any]) -> None:
    """A misspelt LANNER_* variable would be ignored silently (settings ignore unknown names):
    each one must name a field of ``Settings`` (nested fields with ``__``)."""
    from common.settings import Settings

    fields = {name.upper() for name in Settings.model_fields}
    variables = _lanner_variables(services)
    assert variables, "the compose file sets no LANNER_* variable?"
    unknown = sorted(v for v in variables if v.removeprefix("LANNER_").split("__")[0] not in fields)
    assert unknown == [], f"not settings: {unknown}"
