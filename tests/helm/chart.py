"""Rendering ``helm/lanner`` with the cached helm, and reading the manifests it renders."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "lanner"
KUBERNETES_VERSION = "1.33.0"
RELEASE = "lanner"
NAMESPACE = "lanner"

# the values files the chart is rendered with: default values, then each ci/ file
VALUES = {
    "default": [],
    "standalone": [CHART / "ci" / "standalone-values.yaml"],
    "distributed": [CHART / "ci" / "distributed-values.yaml"],
}


class RenderError(AssertionError):
    pass


@dataclass
class Helm:
    binary: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, timeout=120
        )

    def template(
        self, values: list[Path] | None = None, sets: dict[str, str] | None = None
    ) -> Manifests:
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        args += ["--kube-version", KUBERNETES_VERSION]
        for path in values or []:
            args += ["--values", str(path)]
        for key, value in (sets or {}).items():
            args += ["--set", f"{key}={value}"]
        done = self.run(*args)
        if done.returncode != 0:
            raise RenderError(f"helm template failed: {done.stderr.strip()}")
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
        return Manifests(docs, done.stdout)


@dataclass
class Manifests:
    docs: list[dict[str, Any]]
    text: str

    def of(self, kind: str) -> dict[str, dict[str, Any]]:
        """The objects of ``kind`` by name."""
        return {d["metadata"]["name"]: d for d in self.docs if d["kind"] == kind}

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.of(kind)
        assert name in found, f"no {kind} {name}: {sorted(found)}"
        return found[name]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """A container's ``env`` by name: the value, or the ``valueFrom`` source."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_env(manifests: Manifests, workload: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The environment the container of ``workload`` (Deployment or Job) gets in a pod named
    ``pod_name``: its ConfigMaps and Secrets (``envFrom``), then its ``env`` with the downward
    API's ``metadata.name`` resolved."""
    main = container(workload)
    env: dict[str, str] = {}
    for source in main.get("envFrom", []):
        if "configMapRef" in source:
            env.update(manifests.get("ConfigMap", source["configMapRef"]["name"])["data"])
        elif "secretRef" in source:
            secret = manifests.of("Secret").get(source["secretRef"]["name"])
            if secret is None:
                assert source["secretRef"].get("optional"), source
                continue
            env.update(secret.get("stringData", {}))
            env.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
    for item in main.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            field = item["valueFrom"]["fieldRef"]["fieldPath"]
            assert field == "metadata.name", item
            env[item["name"]] = pod_name
    return env
