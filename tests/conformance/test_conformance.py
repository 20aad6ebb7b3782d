"""Kestra's own test flows (``$LANNER_CONFORMANCE_DIR/manifest.yaml``) on both backends.

Each backend runs the same scenarios: ``embedded`` is ``lanner server local``; ``kafka`` is the
high-availability deployment on a real Kafka broker (an executor, two workers and a webserver
with its indexer, each its own process). One session per backend starts the real server (env
and globals the manifest needs), deploys every flow of ``flows/`` through ``POST /api/v1/flows``
and runs every selected scenario through the API, concurrently (``tests/conformance/runner.py``);
then one test per manifest entry reports what differs from what Kestra's tests assert.

Translation: expected values written with Kestra's internal-storage scheme ``kestra:///`` are
compared as ``lanner:///main/`` (our scheme; Lanner's URIs carry the tenant, the scenarios run in
``main``); nothing else of an expectation is changed.

Deliberate divergences (``DIVERGENCES``): two scenarios cannot end as Kestra's Java tests assert
when driven through an API, and for each the test asserts what Lanner does instead:
- ``allow-failure-flowable-warning``: the Java test starts the flow with no inputs at all,
  bypassing input validation; through the API (Kestra's too) the missing required input
  ``crash`` is a 422 naming ``inputs.crash``.
- ``flowable-with-parent-fail``: the flow's If condition is a template that cannot parse
  (a ``{% %}`` tag inside ``{{ }}``). Kestra saves it and fails the task runs when rendering;
  Lanner refuses the flow at deploy time with a 422 naming the property and its line, because
  a broken template should be caught before anything runs.

One expectation is overridden (``OVERRIDES``): in ``inputs-all-types`` a Return task outputs the
SECRET input; Kestra returns it in clear, Lanner masks a secret in outputs as in logs (secrets
never appear in API responses), so the expected output is ``********``.

Scenarios whose flows react to other executions of their namespace (Flow triggers) run one at a
time, so that an execution of another scenario can never trigger them.
"""

from __future__ import annotations

import threading
import traceback
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conformance.manifest import MANIFEST_CASES, entries, load_manifest
from tests.conformance.runner import Api, CaseError, CaseRun, flow_files, flow_key
from tests.infra.deployment import KafkaDeployment
from tests.infra.processes import ManagedProcess, free_ports, http_ok, start_lanner, tail

ENTRIES = entries()
DIVERGENCES = {"allow-failure-flowable-warning", "flowable-with-parent-fail"}
# case -> expectation key -> {sub key: Lanner's value}
OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "inputs-all-types": {"expect_outputs": {"secret.value": "********"}},
}


def _overridden(entry: dict[str, Any]) -> dict[str, Any]:
    changes = OVERRIDES.get(entry["case"])
    if not changes:
        return entry
    entry = dict(entry)
    for key, values in changes.items():
        entry[key] = {**entry[key], **values}
    return entry


READY_SECONDS = 60.0
PARALLEL_CASES = 16
TRIGGER_NAMESPACES = {"io.kestra.tests.trigger"}


@dataclass
class Server:
    url: str
    process: ManagedProcess

    @property
    def log_path(self) -> Path:
        return self.process.log_path


def _server_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in ENTRIES:
        for key, value in (entry.get("environment") or {}).items():
            if env.get(key, value) != value:
                raise AssertionError(f"manifest entries disagree on the env var {key}")
            env[key] = str(value)
    return env


def _server_globals() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for entry in ENTRIES:
        merged.update(entry.get("globals") or {})
    return merged


BACKENDS = ["embedded", "kafka"]


def _embedded_server(base: Path, config: Path) -> Iterator[Server]:
    (port,) = free_ports(1)
    process = start_lanner(
        [
            "server",
            "local",
            "--data-dir",
            str(base / "data"),
            "--port",
            str(port),
            "--config",
            str(config),
        ],
        base / "server.log",
        env=_server_environment(),
        cwd=base,
        name="lanner server local (conformance)",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for(lambda: http_ok(url + "/health/ready"), READY_SECONDS, "ready")
        yield Server(url, process)
    finally:
        process.stop()
        left = process.pids()
        assert not left, f"processes left behind by the server: {left}"


def _kafka_deployment(base: Path, config: Path, servers: str) -> Iterator[Server]:
    """Executor, two workers and a webserver (with its indexer), each its own process."""
    deployment = KafkaDeployment(
        servers, f"conformance-{base.name}.", base, env=_server_environment(), config=config
    )
    try:
        deployment.start(executors=1, workers=2)
        yield Server(deployment.url, deployment.processes["webserver"])
    finally:
        deployment.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def conformance_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    base = tmp_path_factory.mktemp(f"conformance-{request.param}")
    config = base / "lanner.yaml"
    config.write_text(yaml.safe_dump({"globals": _server_globals()}))
    if request.param == "kafka":
        servers = request.getfixturevalue("kafka_bootstrap_servers")
        yield from _kafka_deployment(base, config, servers)
    else:
        yield from _embedded_server(base, config)


@pytest.fixture(scope="module")
def outcomes(conformance_server: Server, request: pytest.FixtureRequest) -> dict[str, list[str]]:
    """Runs every selected scenario once; maps each case to the problems found."""
    selected = {
        item.callspec.params["entry"]["case"]
        for item in request.session.items
        if hasattr(item, "callspec") and "entry" in item.callspec.params
    }
    timeout = float(load_manifest()["defaults"]["run_timeout_seconds"])
    client = httpx.Client(base_url=conformance_server.url, timeout=30.0)
    api = Api(client)
    files = flow_files()
    keys = Counter(flow_key(p.name) for p in files)
    shared_ids = {k for k, n in keys.items() if n > 1}
    deploy_errors: dict[str, str] = {}
    for path in files:
        if flow_key(path.name) not in shared_ids:
            try:
                api.deploy(path.read_text())
            except CaseError as exc:
                deploy_errors[path.name] = str(exc)
    deploy_lock = threading.Lock()
    trigger_lock = threading.Lock()

    def run(entry: dict[str, Any]) -> list[str]:
        entry = _overridden(entry)
        case = CaseRun(api, entry, timeout)
        needed = [*(entry.get("needs") or []), entry["file"]]
        exclusive = any(flow_key(f)[0] in TRIGGER_NAMESPACES for f in needed)
        redeploy = [f for f in needed if flow_key(f) in shared_ids]
        refused = [f"deploy {f}: {deploy_errors[f]}" for f in needed if f in deploy_errors]
        if refused:
            return refused
        try:
            with (
                deploy_lock if redeploy else nullcontext(),
                trigger_lock if exclusive else nullcontext(),
            ):
                for file in redeploy:
                    api.deploy((files[0].parent / file).read_text())
                case.run()
        except CaseError as exc:
            case.problems.append(f"stopped: {exc}")
        except Exception:  # noqa: BLE001 - reported as the case's failure
            case.problems.append("error:\n" + traceback.format_exc())
        return case.problems

    chosen = [e for e in ENTRIES if e["case"] in selected and e["case"] not in DIVERGENCES]
    try:
        with ThreadPoolExecutor(PARALLEL_CASES) as pool:
            results = dict(zip([e["case"] for e in chosen], pool.map(run, chosen), strict=True))
    finally:
        client.close()
    return results


CONFORMING = [e for e in ENTRIES if e["case"] not in DIVERGENCES]


@pytest.mark.parametrize("entry", CONFORMING, ids=[e["case"] for e in CONFORMING])
def test_conformance(
    entry: dict[str, Any], outcomes: dict[str, list[str]], conformance_server: Server
) -> None:
    problems = outcomes[entry["case"]]
    assert not problems, (
        f"{entry['case']} ({entry['file']}):\n  "
        + "\n  ".join(problems)
        + f"\nserver log: {conformance_server.log_path}\n{tail(conformance_server.log_path, 10)}"
        + (f"\nnotes: {entry['notes']}" if "notes" in entry else "")
    )


def test_manifest_entries_are_unique() -> None:
    cases = [e["case"] for e in ENTRIES]
    assert len(cases) == len(set(cases))


def test_manifest_holds_the_cases_counted_when_it_is_absent() -> None:
    assert len(ENTRIES) == MANIFEST_CASES, (
        f"the manifest has {len(ENTRIES)} cases: set MANIFEST_CASES in tests/conformance/"
        "manifest.py, the count printed when the data is absent"
    )


def test_divergence_missing_required_input_is_refused(conformance_server: Server) -> None:
    """allow-failure-flowable-warning: created with no inputs, the flow's required input is
    missing; the API answers 422 naming it (the Java test bypassed validation)."""
    (entry,) = [e for e in ENTRIES if e["case"] == "allow-failure-flowable-warning"]
    with httpx.Client(base_url=conformance_server.url, timeout=30.0) as client:
        response = client.post(f"/api/v1/executions/{entry['namespace']}/{entry['flow_id']}")
    assert response.status_code == 422, response.text
    assert any(e["path"] == "inputs.crash" for e in response.json()["errors"]), response.text


def test_divergence_unparsable_template_is_refused_at_deploy(conformance_server: Server) -> None:
    """flowable-with-parent-fail: the If condition cannot parse; Lanner refuses the flow with a
    422 naming the property and its line instead of failing each task run later."""
    from tests.conformance.manifest import flow_source

    (entry,) = [e for e in ENTRIES if e["case"] == "flowable-with-parent-fail"]
    with httpx.Client(base_url=conformance_server.url, timeout=30.0) as client:
        response = client.post(
            "/api/v1/flows",
            content=flow_source(entry["file"]),
            headers={"Content-Type": "application/x-yaml"},
        )
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["path"] == "tasks[0].tasks[0].tasks[0].condition", error
    assert error["line"] == 17 and "invalid template" in error["message"], error
