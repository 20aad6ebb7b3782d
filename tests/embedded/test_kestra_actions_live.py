"""Kestra 2.0's ``actions/`` and bulk orders on a real ``lanner server local``: what the
answer says right after the call, then what the executor makes of the order.

Kestra references: ``ExecutionService.restart`` (an execution whose task runs did not fail
has "No task found to restart execution from!", 422 through ``ErrorController``) and
``ExecutionService.forceRun`` / ``ConcurrencyLimitService.unqueue`` (a QUEUED execution starts
past the flow's concurrency limit), kestra-io/kestra.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.embedded import live_server as live

NAMESPACE = "lanner.actions"
FLOWS = [
    f"""\
id: fails
namespace: {NAMESPACE}
tasks:
  - id: ok
    type: io.kestra.plugin.core.debug.Return
    format: fine
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
""",
    f"""\
id: fine
namespace: {NAMESPACE}
tasks:
  - id: ok
    type: io.kestra.plugin.core.debug.Return
    format: fine
""",
    f"""\
id: pausable
namespace: {NAMESPACE}
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: done
""",
    f"""\
id: absorbed
namespace: {NAMESPACE}
tasks:
  - id: absorb
    type: io.kestra.plugin.core.flow.AllowFailure
    tasks:
      - id: boom
        type: io.kestra.plugin.core.execution.Fail
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: done
""",
    f"""\
id: limited
namespace: {NAMESPACE}
concurrency:
  limit: 1
  behavior: QUEUE
tasks:
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
""",
]
API = "/api/v1/main/executions"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with live.serving(Path(tmp_path_factory.mktemp("actions")), FLOWS) as http:
        yield http


def _running_task(execution: dict[str, Any]) -> bool:
    runs = execution.get("taskRunList") or []
    return any(t["state"]["current"] == "RUNNING" for t in runs)


def test_restart_a_failed_execution(client: httpx.Client) -> None:
    execution_id = live.create(client, NAMESPACE, "fails")
    failed = live.wait(client, execution_id, "FAILED", live.state_in(*live.TERMINAL))
    assert failed["state"]["current"] == "FAILED"

    response = client.post(f"{API}/{execution_id}/actions/restart")
    assert response.status_code == 200, response.text
    answer = response.json()
    # right after the call: the same execution, RESTARTED, only the failed task run restarted
    assert answer["id"] == execution_id and answer["state"]["current"] == "RESTARTED"
    runs = {t["taskId"]: t["state"]["current"] for t in answer["taskRunList"]}
    assert runs == {"ok": "SUCCESS", "boom": "RESTARTED"}

    again = live.wait(
        client,
        execution_id,
        "the restarted attempt to end",
        lambda e: e["metadata"]["attemptNumber"] == 2 and e["state"]["current"] in live.TERMINAL,
    )
    assert again["state"]["current"] == "FAILED"
    assert "RESTARTED" in [h["state"] for h in again["state"]["histories"]]
    ok = next(t for t in again["taskRunList"] if t["taskId"] == "ok")
    assert len(ok["attempts"]) == 1  # not run again

    fine_id = live.create(client, NAMESPACE, "fine")
    live.wait(client, fine_id, "SUCCESS", live.state_in("SUCCESS"))
    refused = client.post(f"{API}/{fine_id}/actions/restart")
    assert refused.status_code == 422
    assert refused.json()["message"] == "No task found to restart execution from!"


def test_force_run_a_queued_execution_then_kill_both(client: httpx.Client) -> None:
    first = live.create(client, NAMESPACE, "limited")
    live.wait(client, first, "the first to run", _running_task)
    second = live.create(client, NAMESPACE, "limited")
    live.wait(client, second, "the second to wait", live.state_in("QUEUED"))

    forced = client.post(f"{API}/{second}/actions/force-run")
    assert forced.status_code == 200, forced.text
    assert forced.json()["state"]["current"] == "RUNNING"
    live.wait(client, second, "the queued one to run past the limit", _running_task)

    killed = client.request("DELETE", f"{API}/kill/by-ids", json=[first, second])
    assert killed.status_code == 202, killed.text
    assert killed.json()["totalItems"] == 2
    for execution_id in (first, second):
        live.wait(client, execution_id, "KILLED", live.state_in("KILLED"))


def test_pause_lets_the_running_task_finish_and_starts_nothing_until_resumed(
    client: httpx.Client,
) -> None:
    execution_id = live.create(client, NAMESPACE, "pausable")
    live.wait(client, execution_id, "the sleep to run", _running_task)
    paused = client.post(f"{API}/{execution_id}/actions/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["state"]["current"] == "PAUSED"

    def slept(e: dict[str, Any]) -> bool:
        return any(t["state"]["current"] == "SUCCESS" for t in e.get("taskRunList") or [])

    after_sleep = live.wait(client, execution_id, "the sleep to end", slept)
    assert after_sleep["state"]["current"] == "PAUSED"
    assert [t["taskId"] for t in after_sleep["taskRunList"]] == ["sleep"]

    resumed = client.post(f"{API}/{execution_id}/actions/resume")
    assert resumed.status_code == 200, resumed.text
    ended = live.wait(client, execution_id, "SUCCESS", live.state_in(*live.TERMINAL))
    assert ended["state"]["current"] == "SUCCESS"
    assert [t["taskId"] for t in ended["taskRunList"]] == ["sleep", "after"]


def _labels(execution: dict[str, Any]) -> dict[str, str]:
    return {label["key"]: label["value"] for label in execution.get("labels") or []}


def test_labels_reach_the_stored_execution_and_survive_a_restart(client: httpx.Client) -> None:
    """Kestra's ``ExecutionController.setLabels`` (ended executions only, 400 otherwise):
    Lanner sends the labels to the executor, whose snapshots carry them from then on."""
    execution_id = live.create(client, NAMESPACE, "fails")
    live.wait(client, execution_id, "FAILED", live.state_in("FAILED"))
    response = client.post(
        f"{API}/{execution_id}/actions/labels", json=[{"key": "reviewed", "value": "no"}]
    )
    assert response.status_code == 200, response.text
    assert _labels(response.json())["reviewed"] == "no"
    bulk = client.post(
        f"{API}/labels/by-ids",
        json={"executionsId": [execution_id], "executionLabels": [{"key": "team", "value": "a"}]},
    )
    assert bulk.status_code == 202, bulk.text
    live.wait(
        client,
        execution_id,
        "the labels in the stored execution",
        lambda e: {"reviewed": "no", "team": "a"}.items() <= _labels(e).items(),
    )
    restarted = client.post(f"{API}/{execution_id}/actions/restart")
    assert restarted.status_code == 200, restarted.text
    again = live.wait(
        client,
        execution_id,
        "the restarted attempt to end",
        lambda e: e["metadata"]["attemptNumber"] == 2 and e["state"]["current"] in live.TERMINAL,
    )
    assert {"reviewed": "no", "team": "a"}.items() <= _labels(again).items()


def test_restart_a_warning_execution_whose_failure_was_absorbed(client: httpx.Client) -> None:
    """Kestra's ``ExecutionService.restart``: an ended execution holding a FAILED task run
    restarts whatever its own state (here WARNING); the failure runs again, not ``after``."""
    execution_id = live.create(client, NAMESPACE, "absorbed")
    live.wait(client, execution_id, "WARNING", live.state_in("WARNING"))
    response = client.post(f"{API}/{execution_id}/actions/restart")
    assert response.status_code == 200, response.text
    assert response.json()["state"]["current"] == "RESTARTED"
    again = live.wait(
        client,
        execution_id,
        "the restarted attempt to end",
        lambda e: e["metadata"]["attemptNumber"] == 2 and e["state"]["current"] in live.TERMINAL,
    )
    assert again["state"]["current"] == "WARNING"
    runs = {t["taskId"]: t for t in again["taskRunList"]}
    assert "RESTARTED" in [h["state"] for h in runs["boom"]["state"]["histories"]]
    assert len(runs["after"]["attempts"]) == 1
