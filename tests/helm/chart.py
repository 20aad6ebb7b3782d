"""Rendering ``helm/lanner`` with the cached helm, and reading the manifests it renders."""

from __future__ import annotations

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
