"""The container image's Dockerfile: the UI built in a stage of its own, a non-root user, and a
health check that really tells a live component from a dead one (its command is run here
against a real `lanner server local`; no Docker engine needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.bench._server import LocalServer
from tests.infra.processes import free_ports

DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_the_ui_is_built_in_its_own_stage_and_the_image_runs_as_a_user() -> None:
    instructions = _instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert stages[0].startswith("node:") and stages[0].endswith(" AS ui")
    assert any(k == "RUN" and "vite build" in rest for k, rest in instructions)
    assert any(k == "COPY" and rest.startswith("--from=ui") for k, rest in instructions)
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")


def _health_command() -> list[str]:
    (check,) = [rest for keyword, rest in _instructions() if keyword == "HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def test_the_health_check_passes_on_a_live_server_and_fails_without_one(
    tmp_path: Path,
) -> None:
    (unused,) = free_ports(1)
    env = {**os.environ, "LANNER_METRICS_PORT": str(unused), "LANNER_PORT": str(unused)}
    dead = subprocess.run(_health_command(), env=env, capture_output=True, timeout=30)
    assert dead.returncode == 1, dead.stderr
    server = LocalServer(tmp_path)
    server.start()
    try:
        env["LANNER_PORT"] = str(server.port)
        live = subprocess.run(_health_command(), env=env, capture_output=True, timeout=30)
        assert live.returncode == 0, live.stderr
    finally:
        server.stop()
