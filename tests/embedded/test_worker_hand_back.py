"""A stopping worker hands back what still runs, and the executor resubmits it at once.

On a real ``lanner server local`` process: SIGTERM while a task runs, with no drain period, then
a restart. The worker's ``WorkerDied`` hand-back (not a KILLED result) makes the executor fail
that attempt as lost and run a new one; the execution ends SUCCESS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.infra.waiting import wait_until

NAMESPACE = "lanner.handback"
FLOW = f"""\
id: nap
namespace: {NAMESPACE}
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S
"""


def _execution(url: str, execution_id: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/v1/executions/{execution_id}", timeout=30)
    if response.status_code == 404:  # not indexed yet
        return {}
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _attempts_across_a_restart(server: LocalServer) -> list[str]:
    """Runs the 2 s sleep, sends SIGTERM while it runs, restarts the server; the states of the
    sleep's attempts once the execution ended SUCCESS."""
    httpx.post(
        f"{server.url}/api/v1/flows",
        content=FLOW,
        headers={"content-type": "application/x-yaml"},
        timeout=30,
    ).raise_for_status()
    created = httpx.post(f"{server.url}/api/v1/executions/{NAMESPACE}/nap", timeout=30)
    created.raise_for_status()
    execution_id = created.json()["id"]

    def running() -> bool:
        runs = _execution(server.url, execution_id).get("taskRunList") or []
        return any(t["state"]["current"] == "RUNNING" for t in runs)

    wait_until(running, 30, "the sleep to run")
    server.stop()  # SIGTERM while the sleep runs
    server.start()

    def ended() -> dict[str, Any]:
        execution = _execution(server.url, execution_id)
        return execution if execution.get("state", {}).get("current") == "SUCCESS" else {}

    execution = wait_until(ended, 60, "the execution to end SUCCESS")
    [run] = execution["taskRunList"]
    return [a["state"]["current"] for a in run["attempts"]]


def test_a_task_running_at_shutdown_runs_again_as_a_new_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANNER_WORKER_DRAIN_TIMEOUT_SECONDS", "0")
    server = LocalServer(tmp_path)
    server.start()
    try:
        # no drain period: the worker hands the sleep back, the first attempt is lost
        assert _attempts_across_a_restart(server) == ["FAILED", "SUCCESS"]
    finally:
        server.stop()


def test_sigterm_lets_a_short_running_task_finish_before_the_server_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANNER_WORKER_DRAIN_TIMEOUT_SECONDS", "30")
    server = LocalServer(tmp_path)
    server.start()
    try:
        # the worker drains: the sleep ends within the drain period, in its only attempt
        assert _attempts_across_a_restart(server) == ["SUCCESS"]
    finally:
        server.stop()
