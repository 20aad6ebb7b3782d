"""SIGKILL of ``lanner server local`` in the middle of 50 running executions, then a restart on
the same data dir: every execution finishes from where it was.

Task runs that had ended before the kill are not run again (one attempt, same outputs: their
``Return`` renders ``now()``, so a re-run would show a new value); task runs the dead worker
held get a second attempt.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.bench._server import LocalServer
from tests.infra.waiting import wait_until

NAMESPACE = "lanner.crash"
EXECUTIONS = 50
FLOW = f"""\
id: crash
namespace: {NAMESPACE}
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ now() }}}}"
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: last
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ now() }}}}"
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ outputs.first.value }}}} {{{{ outputs.last.value }}}}"
"""
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}


def _search(client: httpx.Client, label: str) -> dict[str, dict[str, Any]]:
    response = client.get(
        "/api/v1/executions/search", params={"labels": f"crash:{label}", "size": 1000}
    )
    response.raise_for_status()
    return {e["id"]: e for e in response.json()["results"]}


def _mid_flight(executions: dict[str, dict[str, Any]]) -> bool:
    """Some executions ended and some have a task run running on the worker."""
    if len(executions) < EXECUTIONS:
        return False
    ended = sum(1 for e in executions.values() if e["state"]["current"] == "SUCCESS")
    running = sum(
        1
        for e in executions.values()
        if any(tr["state"]["current"] == "RUNNING" for tr in e.get("taskRunList") or [])
    )
    return ended > 0 and running > 0


def test_sigkill_mid_flight_then_restart_finishes_every_execution(tmp_path: Path) -> None:
    label = uuid.uuid4().hex[:12]
    server = LocalServer(tmp_path)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            client.post(
                "/api/v1/flows", content=FLOW, headers={"content-type": "application/x-yaml"}
            ).raise_for_status()
            created = []
            for _ in range(EXECUTIONS):
                response = client.post(
                    f"/api/v1/executions/{NAMESPACE}/crash", params={"labels": f"crash:{label}"}
                )
                response.raise_for_status()
                created.append(response.json()["id"])
            before: dict[str, dict[str, Any]] = {}

            def mid_flight() -> bool:
                before.clear()
                before.update(_search(client, label))
                return _mid_flight(before)

            wait_until(mid_flight, 60, "some executions ended and some running", interval=0.05)
        server.kill()
    finally:
        server.kill()

    restarted = LocalServer(tmp_path)
    restarted.start()
    try:
        with httpx.Client(base_url=restarted.url, timeout=30) as client:
            after: dict[str, dict[str, Any]] = {}

            def all_ended() -> bool:
                after.clear()
                after.update(_search(client, label))
                return len(after) == EXECUTIONS and all(
                    e["state"]["current"] in TERMINAL for e in after.values()
                )

            wait_until(all_ended, 120, f"the {EXECUTIONS} executions to end after the restart")
    finally:
        restarted.stop()

    assert sorted(after) == sorted(created), "an execution was lost"
    states = {e["state"]["current"] for e in after.values()}
    assert states == {"SUCCESS"}, states

    finished_before = 0
    for execution_id, old in before.items():
        new_runs = {tr["id"]: tr for tr in after[execution_id]["taskRunList"]}
        for tr in old.get("taskRunList") or []:
            if tr["state"]["current"] not in TERMINAL:
                continue
            finished_before += 1
            new = new_runs[tr["id"]]
            assert len(new["attempts"]) == 1, (execution_id, tr["taskId"], new["attempts"])
            assert new["outputs"] == tr["outputs"], (execution_id, tr["taskId"])
    assert finished_before > 0

    retried = []
    for execution in after.values():
        for tr in execution["taskRunList"]:
            assert tr["state"]["current"] == "SUCCESS"
            attempts = [a["state"]["current"] for a in tr["attempts"]]
            if len(attempts) > 1:
                # only a task run the dead worker held is resubmitted: its attempt 1 is FAILED
                assert attempts[:-1] == ["FAILED"] and attempts[-1] == "SUCCESS", attempts
                retried.append(tr["taskId"])
    interrupted = [
        tr["taskId"]
        for e in before.values()
        for tr in e.get("taskRunList") or []
        if tr["state"]["current"] == "RUNNING" and tr["taskId"] == "sleep"
    ]
    # the kill came while Sleep task runs were running: at least one of them had to be resubmitted
    assert interrupted and retried, (interrupted, retried)
