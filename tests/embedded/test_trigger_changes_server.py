"""On a real ``lanner server local``, through the API: disabling a per-second schedule stops it,
enabling it resumes it without the dates missed meanwhile, a backfill over a past hour creates
one execution per date, pause stops a backfill and delete removes it, the Toggle task disables
another flow's trigger, and a webhook can wait for its execution's end and return its outputs.

No sleeps: "some time passed" is the ``clock`` flow's disabled per-second trigger, whose next
date the scheduler moves at every tick (and the indexer publishes).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.infra.waiting import wait_until

NS = "lanner.triggers"
CLOCK = f"""\
id: clock
namespace: {NS}
tasks:
  - id: never
    type: io.kestra.plugin.core.debug.Return
    format: never
triggers:
  - id: second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
    disabled: true
"""


def ticker(flow_id: str) -> str:
    return f"""\
id: {flow_id}
namespace: {NS}
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.date }}}}"
triggers:
  - id: every
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
"""


TEN_MINUTES = f"""\
id: ten
namespace: {NS}
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.date }}}}"
triggers:
  - id: every
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/10 * * * *"
"""
TOGGLER = f"""\
id: toggler
namespace: {NS}
tasks:
  - id: switch_off
    type: io.kestra.plugin.core.trigger.Toggle
    flowId: toggled
    trigger: every
    enabled: false
"""
HOOKED = f"""\
id: hooked
namespace: {NS}
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "hello {{{{ trigger.body.name }}}}"
outputs:
  - id: greeting
    type: STRING
    value: "{{{{ outputs.ret.value }}}}"
triggers:
  - id: plain
    type: io.kestra.plugin.core.trigger.Webhook
    key: plain-key
  - id: answering
    type: io.kestra.plugin.core.trigger.Webhook
    key: answering-key
    wait: true
    returnOutputs: true
"""
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = LocalServer(Path(tmp_path_factory.mktemp("triggers")))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            deploy(http, CLOCK)
            yield http
    finally:
        server.stop()


def deploy(client: httpx.Client, source: str) -> None:
    response = client.post(
        "/api/v1/flows", content=source, headers={"content-type": "application/x-yaml"}
    )
    assert response.status_code < 300, response.text


def context(client: httpx.Client, flow_id: str, trigger_id: str) -> dict[str, Any] | None:
    response = client.get("/api/v1/triggers/search", params={"namespace": NS, "flowId": flow_id})
    response.raise_for_status()
    for item in response.json()["results"]:
        if item["triggerContext"]["triggerId"] == trigger_id:
            return dict(item["triggerContext"])
    return None


def date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ticks_pass(client: httpx.Client, seconds: int) -> None:
    """Wait until the scheduler has ticked through ``seconds`` more seconds."""

    def next_clock() -> datetime | None:
        found = context(client, "clock", "second")
        value = found.get("nextExecutionDate") if found else None
        return date(value) if value else None

    start = wait_until(next_clock, 30, "the clock trigger to be evaluated")
    wait_until(
        lambda: (now := next_clock()) is not None and now >= start + timedelta(seconds=seconds),
        30,
        f"the scheduler to tick through {seconds} s",
    )


def executions(client: httpx.Client, flow_id: str, label: str | None = None) -> list[dict]:
    params: dict[str, Any] = {"namespace": NS, "flowId": flow_id, "size": 1000}
    if label:
        params["labels"] = label
    response = client.get("/api/v1/executions/search", params=params)
    response.raise_for_status()
    return list(response.json()["results"])


def scheduled_dates(client: httpx.Client, flow_id: str, label: str | None = None) -> list[datetime]:
    return sorted(
        date(e["trigger"]["variables"]["date"]) for e in executions(client, flow_id, label)
    )


def change(client: httpx.Client, method: str, path: str, body: dict[str, Any]) -> dict:
    response = client.request(method, f"/api/v1/triggers{path}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_disable_stops_a_schedule_and_enable_resumes_it_without_the_missed_dates(
    client: httpx.Client,
) -> None:
    deploy(client, ticker("ticker"))
    ids = {"namespace": NS, "flowId": "ticker", "triggerId": "every"}
    wait_until(lambda: len(executions(client, "ticker")) >= 2, 60, "two per-second executions")
    change(client, "PUT", "", {**ids, "disabled": True})
    disabled = wait_until(
        lambda: (c := context(client, "ticker", "every")) and c["disabled"] and c,
        30,
        "the scheduler to apply the disabling",
    )
    first_skipped = date(disabled["nextExecutionDate"])
    ticks_pass(client, 3)
    assert all(d < first_skipped for d in scheduled_dates(client, "ticker"))
    enabled_at = date(change(client, "PUT", "", {**ids, "disabled": False})["date"])
    wait_until(
        lambda: len([d for d in scheduled_dates(client, "ticker") if d >= first_skipped]) >= 2,
        60,
        "the schedule to fire again",
    )
    resumed = [d for d in scheduled_dates(client, "ticker") if d >= first_skipped]
    # the dates from first_skipped to enabled_at passed while disabled: none fired
    assert min(resumed) > enabled_at
    change(client, "PUT", "", {**ids, "disabled": True})  # quiet for the other tests


def test_backfill_over_a_past_hour_then_pause_and_delete(client: httpx.Client) -> None:
    deploy(client, TEN_MINUTES)
    ids = {"namespace": NS, "flowId": "ten", "triggerId": "every"}
    wait_until(
        lambda: (context(client, "ten", "every") or {}).get("nextExecutionDate"), 30, "a first tick"
    )
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    expected = [hour + timedelta(minutes=m) for m in range(0, 60, 10)]
    backfill = {
        "start": hour.isoformat(),
        "end": (hour + timedelta(minutes=59)).isoformat(),
        "labels": {"run": "hour"},
    }
    answer = change(client, "PUT", "", {**ids, "backfill": backfill})
    assert answer["backfill"]["paused"] is False
    wait_until(
        lambda: len(executions(client, "ten", "run:hour")) == 6, 60, "one execution per date"
    )
    wait_until(lambda: context(client, "ten", "every").get("backfill") is None, 30, "its end")
    ticks_pass(client, 2)
    assert scheduled_dates(client, "ten", "run:hour") == expected
    # a long backfill: paused, nothing more; deleted, gone
    long = {"start": (hour - timedelta(days=30)).isoformat(), "labels": {"run": "long"}}
    change(client, "PUT", "", {**ids, "backfill": long})
    wait_until(lambda: len(executions(client, "ten", "run:long")) >= 2, 60, "the backfill to run")
    change(client, "PUT", "/backfill/pause", ids)
    paused = wait_until(
        lambda: (b := context(client, "ten", "every").get("backfill")) and b["paused"] and b,
        30,
        "the pause to apply",
    )
    ticks_pass(client, 3)
    still = context(client, "ten", "every")["backfill"]
    assert still["paused"] and still["currentDate"] == paused["currentDate"]
    next_backfill_date = date(paused["currentDate"])
    assert all(d < next_backfill_date for d in scheduled_dates(client, "ten", "run:long"))
    change(client, "POST", "/backfill/delete", ids)
    wait_until(lambda: context(client, "ten", "every").get("backfill") is None, 30, "the delete")
    ticks_pass(client, 2)
    assert all(d < next_backfill_date for d in scheduled_dates(client, "ten", "run:long"))
    gone = client.put("/api/v1/triggers/backfill/pause", json=ids)
    assert gone.status_code == 409


def test_the_toggle_task_disables_another_flows_trigger(client: httpx.Client) -> None:
    deploy(client, ticker("toggled"))
    deploy(client, TOGGLER)
    wait_until(lambda: executions(client, "toggled"), 60, "the toggled flow to fire")
    started = client.post(f"/api/v1/executions/{NS}/toggler", params={"wait": "true"})
    assert started.status_code == 200, started.text
    assert started.json()["state"]["current"] == "SUCCESS"
    off = wait_until(
        lambda: (c := context(client, "toggled", "every")) and c["disabled"] and c,
        30,
        "the Toggle task's request to apply",
    )
    ticks_pass(client, 3)
    assert all(d < date(off["nextExecutionDate"]) for d in scheduled_dates(client, "toggled"))


def test_a_webhook_waits_for_the_end_and_returns_the_outputs(client: httpx.Client) -> None:
    deploy(client, HOOKED)
    base = f"/api/v1/executions/webhook/{NS}/hooked"
    quick = client.post(f"{base}/plain-key", json={"name": "quick"})
    assert quick.status_code == 200 and quick.json()["id"]
    waited = client.post(f"{base}/plain-key", params={"wait": "true"}, json={"name": "w"})
    assert waited.status_code == 200 and waited.json()["state"]["current"] == "SUCCESS"
    outputs = client.post(f"{base}/answering-key", json={"name": "world"})
    assert outputs.status_code == 200, outputs.text
    assert outputs.json() == {"greeting": "hello world"}
    # disabled through the API: the scheduler stores a state for the webhook trigger too
    ids = {"namespace": NS, "flowId": "hooked", "triggerId": "plain"}
    change(client, "PUT", "", {**ids, "disabled": True})
    wait_until(
        lambda: client.post(f"{base}/plain-key").status_code == 409, 30, "the webhook refused"
    )
    change(client, "PUT", "", {**ids, "disabled": False})
    wait_until(
        lambda: client.post(f"{base}/plain-key").status_code == 200, 30, "the webhook accepted"
    )
