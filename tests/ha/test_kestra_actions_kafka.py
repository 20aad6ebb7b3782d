"""Kestra 2.0's ``actions/`` and bulk orders on Kafka: a webserver (with its indexer, SQLite
repository), a Faust executor and a worker, each its own process (``KafkaDeployment``),
driven through HTTP only. The same flows and checks as ``tests/embedded/
test_kestra_actions_live.py``, in one deployment to keep the suite short.

Kestra references (kestra-io/kestra): ``ExecutionService.restart`` (RESTARTED right after;
"No task found to restart execution from!" 422 when no task run failed; a WARNING execution
holding a FAILED task run restarts), ``replay``,
``pause`` / ``resume``, ``ExecutionController.setLabels`` (ended executions only),
``ExecutionController.killByIds``, ``ExecutionService.forceRun`` /
``ConcurrencyLimitService.unqueue`` (a QUEUED execution starts past the limit).

Force-run of a QUEUED execution on Kafka: the webserver sends the execution a ``Dequeue``
itself; the flow agent (owner of the flow's slots) hears of the execution's RUNNING through
its state notice and moves it from its queue to its running slots, so the limit counts it:
an execution queued behind it starts only once both it and the one it overtook ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.embedded.live_server import TERMINAL
from tests.embedded.test_kestra_actions_live import FLOWS, NAMESPACE
from tests.infra.deployment import KafkaDeployment
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

API = "/api/v1/main/executions"
DEADLINE = 120.0  # a loaded machine: generous, never a sleep


@pytest.fixture
def client(
    kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path
) -> Iterator[httpx.Client]:
    deployment = KafkaDeployment(kafka_bootstrap_servers, unique_name + ".", tmp_path)
    try:
        deployment.start()
        with httpx.Client(base_url=deployment.url, timeout=30) as http:
            for source in FLOWS:
                http.post(
                    "/api/v1/flows", content=source, headers={"content-type": "application/x-yaml"}
                ).raise_for_status()
            yield http
    finally:
        deployment.stop()


def wait(
    client: httpx.Client, execution_id: str, what: str, predicate: Callable[[Any], bool]
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def check() -> bool:
        response = client.get(f"{API}/{execution_id}")
        if response.status_code != 200:
            return False
        found.clear()
        found.update(response.json())
        return bool(predicate(found))

    wait_until(check, DEADLINE, f"{execution_id}: {what}")
    return found


def create(client: httpx.Client, flow_id: str) -> str:
    response = client.post(f"{API}/{NAMESPACE}/{flow_id}")
    response.raise_for_status()
    return str(response.json()["id"])


def state(*states: str) -> Callable[[Any], bool]:
    return lambda e: e["state"]["current"] in states


def running_task(execution: dict[str, Any]) -> bool:
    return any(t["state"]["current"] == "RUNNING" for t in execution.get("taskRunList") or [])


def labels(execution: dict[str, Any]) -> dict[str, str]:
    return {label["key"]: label["value"] for label in execution.get("labels") or []}


def entered(execution: dict[str, Any], wanted: str) -> datetime:
    return max(
        datetime.fromisoformat(h["date"].replace("Z", "+00:00"))
        for h in execution["state"]["histories"]
        if h["state"] == wanted
    )


def test_actions_and_bulk_orders_on_kafka(client: httpx.Client) -> None:
    # restart: RESTARTED right after, the executor runs attempt 2; 422 when nothing failed
    failed_id = create(client, "fails")
    fine_id = create(client, "fine")
    wait(client, failed_id, "FAILED", state("FAILED"))
    wait(client, fine_id, "SUCCESS", state("SUCCESS"))
    refused = client.post(f"{API}/{fine_id}/actions/restart")
    assert refused.status_code == 422, refused.text
    assert refused.json()["message"] == "No task found to restart execution from!"

    # labels on the ended execution (one route, one bulk): the executor's snapshot carries them
    assert (
        client.post(
            f"{API}/{failed_id}/actions/labels", json=[{"key": "reviewed", "value": "no"}]
        ).status_code
        == 200
    )
    bulk = client.post(
        f"{API}/labels/by-ids",
        json={"executionsId": [failed_id], "executionLabels": [{"key": "team", "value": "a"}]},
    )
    assert bulk.status_code == 202, bulk.text
    wanted = {"reviewed": "no", "team": "a"}
    wait(client, failed_id, "labels stored", lambda e: wanted.items() <= labels(e).items())

    restarted = client.post(f"{API}/{failed_id}/actions/restart")
    assert restarted.status_code == 200, restarted.text
    assert restarted.json()["state"]["current"] == "RESTARTED"
    again = wait(
        client,
        failed_id,
        "the restarted attempt to end",
        lambda e: e["metadata"]["attemptNumber"] == 2 and e["state"]["current"] in TERMINAL,
    )
    assert again["state"]["current"] == "FAILED"
    assert wanted.items() <= labels(again).items()  # a restart keeps them

    # a WARNING execution holding a FAILED task run (absorbed by an AllowFailure) restarts too
    absorbed = create(client, "absorbed")
    wait(client, absorbed, "WARNING", state("WARNING"))
    assert client.post(f"{API}/{absorbed}/actions/restart").status_code == 200
    wait(
        client,
        absorbed,
        "the restarted attempt to end WARNING",
        lambda e: e["metadata"]["attemptNumber"] == 2 and e["state"]["current"] == "WARNING",
    )

    # replay: a new execution from the failed task run
    boom = next(t for t in again["taskRunList"] if t["taskId"] == "boom")
    replayed = client.post(f"{API}/{failed_id}/actions/replay", params={"taskRunId": boom["id"]})
    assert replayed.status_code == 200, replayed.text
    replay_id = replayed.json()["id"]
    assert replay_id != failed_id
    replay = wait(client, replay_id, "the replay to end", state(*TERMINAL))
    assert replay["state"]["current"] == "FAILED" and replay["originalId"] == failed_id

    # pause, then resume once the stored execution is PAUSED
    pausable = create(client, "pausable")
    wait(client, pausable, "the sleep to run", running_task)
    paused = client.post(f"{API}/{pausable}/actions/pause")
    assert paused.status_code == 200, paused.text
    wait(client, pausable, "PAUSED", state("PAUSED"))
    resumed = client.post(f"{API}/{pausable}/actions/resume")
    assert resumed.status_code == 200, resumed.text
    ended = wait(client, pausable, "SUCCESS", state(*TERMINAL))
    assert ended["state"]["current"] == "SUCCESS"
    assert [t["taskId"] for t in ended["taskRunList"]] == ["sleep", "after"]

    # force-run a QUEUED execution past the limit; a third one queues behind both
    first = create(client, "limited")
    wait(client, first, "the first to run", running_task)
    second = create(client, "limited")
    wait(client, second, "the second to queue", state("QUEUED"))
    forced = client.post(f"{API}/{second}/actions/force-run")
    assert forced.status_code == 200, forced.text
    wait(client, second, "the forced one to run", running_task)
    third = create(client, "limited")
    wait(client, third, "the third to queue", state("QUEUED"))

    killed = client.request("DELETE", f"{API}/kill/by-ids", json=[first])
    assert killed.status_code == 202, killed.text
    wait(client, first, "KILLED", state("KILLED"))
    killed = client.request("DELETE", f"{API}/kill/by-ids", json=[second])
    assert killed.status_code == 202, killed.text
    second_end = wait(client, second, "KILLED", state("KILLED"))
    # the flow agent counted the forced execution: the third started after it ended, not
    # when the first one did (then it would have run with the forced one)
    started = wait(client, third, "the third to run", running_task)
    assert entered(started, "RUNNING") >= entered(second_end, "KILLED")
    assert client.request("DELETE", f"{API}/kill/by-ids", json=[third]).status_code == 202
    wait(client, third, "KILLED", state("KILLED"))
