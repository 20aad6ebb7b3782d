"""The operations tools the chart and metrics tests drive: helm (built once into the cache) and
Debian's prometheus.

Layout in the cache (``$LANNER_INFRA_CACHE``, default ``~/.cache/lanner/infra``)::

    helm-<version>/bin/helm      `go install helm.sh/helm/v3/cmd/helm@<version>` (GOBIN)
    helm-<version>/.complete     written once the binary answers and says it is <version>
    go/                          GOPATH (module cache) and GOCACHE of that build
    logs/fetch-helm.log          full output of the last build

helm comes from the Go module proxy, built by the Go toolchain (``/usr/local/go/bin/go`` or the
``go`` on PATH): a few minutes the first time, a ``stat`` after. Prometheus is Debian's package
(``make prometheus`` installs it, like ``make chromium``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .errors import InfraError
from .provision import Progress, cache_dir

HELM_VERSION = "v3.22.0"
HELM_MODULE = "helm.sh/helm/v3/cmd/helm"
GO_CANDIDATES = ("/usr/local/go/bin/go",)


def helm_dir() -> Path:
    return cache_dir() / f"helm-{HELM_VERSION.removeprefix('v')}"


def helm_path() -> Path:
    return helm_dir() / "bin" / "helm"


def _go() -> str:
    found = shutil.which("go") or next((g for g in GO_CANDIDATES if Path(g).exists()), None)
    if found is None:
        raise InfraError(
            "no Go toolchain (`go` on PATH or /usr/local/go/bin/go): helm is built with "
            f"`go install {HELM_MODULE}@{HELM_VERSION}`"
        )
    return found


def fetch_helm(progress: Progress | None = None) -> Path:
    """The cached helm binary, built with ``go install`` the first time (with progress)."""
    say = progress or (lambda line: print(line, flush=True))
    helm = helm_path()
    if (helm_dir() / ".complete").exists() and helm.exists():
        say(f"[infra] cache warm: helm {HELM_VERSION}")
        return helm
    go = _go()
    log_path = cache_dir() / "logs" / "fetch-helm.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    helm.parent.mkdir(parents=True, exist_ok=True)
    gopath = cache_dir() / "go"
    env = {
        **os.environ,
        "GOBIN": str(helm.parent),
        "GOPATH": str(gopath),
        "GOCACHE": str(gopath / "build-cache"),
        "GOFLAGS": "-modcacherw",  # the module cache stays deletable with rm -rf
    }
    say(
        f"[infra] building helm {HELM_VERSION} with `go install` (a few minutes the first "
        f"time; full output: {log_path})"
    )
    started = time.monotonic()
    built = 0
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [go, "install", "-v", f"{HELM_MODULE}@{HELM_VERSION}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cache_dir(),
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            text = line.strip()
            if text.startswith("go: downloading"):
                say(f"[infra]   {text.removeprefix('go: ')}")
            elif text and " " not in text:  # -v prints each package it compiles
                built += 1
                if built % 50 == 0:
                    say(f"[infra]   compiled {built} packages ({time.monotonic() - started:.0f}s)")
        code = proc.wait()
    if code != 0 or not helm.exists():
        tail = log_path.read_text().splitlines()[-10:]
        raise InfraError(f"`go install` of helm failed (exit {code})", log_path, "\n".join(tail))
    # `helm version` of a `go install` build says only v3.22 (no release ldflags): the module
    # version comes from the binary's build information
    built_from = subprocess.run([go, "version", "-m", str(helm)], capture_output=True, text=True)
    module = f"helm.sh/helm/v3\t{HELM_VERSION}"
    if module not in built_from.stdout:
        raise InfraError(f"{helm} is not built from {module}: {built_from.stdout[:500]}")
    answers = subprocess.run([str(helm), "version", "--short"], capture_output=True, text=True)
    if answers.returncode != 0:
        raise InfraError(f"{helm} does not answer `version`: {answers.stderr}")
    (helm_dir() / ".complete").write_text(HELM_VERSION + "\n")
    say(f"[infra] helm {HELM_VERSION} ready in {time.monotonic() - started:.0f}s: {helm}")
    return helm


def prometheus_path() -> Path:
    """Debian's prometheus (``make prometheus``: ``apt-get install -y prometheus``)."""
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        raise InfraError(
            "`prometheus` is not installed: run `make prometheus` (Debian: apt-get install -y "
            "prometheus)"
        )
    return Path(found)
