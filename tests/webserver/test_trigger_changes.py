"""Trigger changes through the API: each is checked (a 4xx naming the field otherwise) and sent
to the scheduler as a request on the ``triggers`` topic; the answer is the state as it will be."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from common.backends import Backends
from common.models.trigger import BackfillState, TriggerRequest, TriggerState, is_request_key
from tests.webserver.conftest import topic_records

FLOW = """\
id: nightly
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: at-night
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
    timezone: Europe/Paris
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: abc
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlowCondition
        namespace: company.team
        flowId: other
"""

IDS = {"namespace": "company.team", "flowId": "nightly", "triggerId": "at-night"}


def deploy(client: TestClient) -> None:
    response = client.post(
        "/api/v1/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"}
    )
    assert response.status_code == 200, response.text


def requests(backends: Backends) -> list[TriggerRequest]:
    return [
        TriggerRequest.model_validate_json(value)
        for key, value in topic_records(backends, "triggers")
        if is_request_key(key) and value is not None
    ]


def store(backends: Backends, **fields: Any) -> None:
    backends.repositories.triggers.save_many(
        [
            TriggerState(
                namespace="company.team",
                flow_id="nightly",
                trigger_id="at-night",
                date=datetime.now(UTC),
                **fields,
            )
        ]
    )


def test_disable_and_enable_send_requests_and_answer_the_state_to_come(
    client: TestClient, backends: Backends
) -> None:
    deploy(client)
    response = client.put("/api/v1/triggers", json={**IDS, "disabled": True})
    assert response.status_code == 200, response.text
    context = response.json()
    assert context["disabled"] is True and context["triggerId"] == "at-night"
    assert "appliedRequests" not in context
    # Kestra's tenant path; the UI sends the whole trigger context back: extra fields ignored
    again = client.put(
        "/api/v1/main/triggers", json={**context, "disabled": False, "nextExecutionDate": None}
    )
    assert again.status_code == 200, again.text
    assert again.json()["disabled"] is False
    sent = requests(backends)
    assert [(r.trigger_id, r.disabled, r.source) for r in sent] == [
        ("at-night", True, "api"),
        ("at-night", False, "api"),
    ]


def test_set_disabled_in_bulk(client: TestClient, backends: Backends) -> None:
    deploy(client)
    hook = {**IDS, "triggerId": "hook"}
    by_ids = client.post(
        "/api/v1/triggers/set-disabled/by-triggers",
        json={"triggers": [IDS, hook], "disabled": True},
    )
    assert by_ids.status_code == 200 and by_ids.json() == {"count": 2}
    by_query = client.post(
        "/api/v1/triggers/set-disabled/by-query",
        params={"namespace": "company.team", "disabled": "false"},
    )
    # the Flow trigger too: the executor reads its state (common.trigger_states)
    assert by_query.status_code == 200 and by_query.json() == {"count": 3}
    assert [r.disabled for r in requests(backends)] == [True, True, False, False, False]
    # one unknown trigger refuses the whole list
    bad = client.post(
        "/api/v1/triggers/set-disabled/by-triggers",
        json={"triggers": [IDS, {**IDS, "triggerId": "nope"}], "disabled": True},
    )
    assert bad.status_code == 404 and "nope" in bad.json()["message"]
    assert len(requests(backends)) == 5


def test_bad_changes_are_4xx_naming_the_field(client: TestClient, backends: Backends) -> None:
    deploy(client)
    missing = client.put("/api/v1/triggers", json={"namespace": "company.team", "disabled": True})
    assert missing.status_code == 422
    assert {e["path"] for e in missing.json()["errors"]} >= {"flowId", "triggerId"}
    no_change = client.put("/api/v1/triggers", json=IDS)
    assert no_change.status_code == 422 and no_change.json()["errors"][0]["path"] == "disabled"
    unknown_flow = client.put("/api/v1/triggers", json={**IDS, "flowId": "nope", "disabled": True})
    assert unknown_flow.status_code == 404
    unknown = client.put("/api/v1/triggers", json={**IDS, "triggerId": "nope", "disabled": True})
    assert unknown.status_code == 404 and "'nope'" in unknown.json()["message"]
    flow_trigger = client.post("/api/v1/triggers/company.team/nightly/after/unlock")
    assert flow_trigger.status_code == 422, flow_trigger.text
    assert flow_trigger.json()["errors"][0]["path"] == "triggerId"
    backwards = client.put(
        "/api/v1/triggers",
        json={**IDS, "backfill": {"start": "2024-05-02T00:00:00Z", "end": "2024-05-01T00:00:00Z"}},
    )
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["path"] == "backfill.end"
    future = client.put(
        "/api/v1/triggers", json={**IDS, "backfill": {"start": "2999-01-01T00:00:00Z"}}
    )
    assert future.status_code == 422 and future.json()["errors"][0]["path"] == "backfill.start"
    not_a_date = client.put("/api/v1/triggers", json={**IDS, "backfill": {"start": "yesterday"}})
    assert not_a_date.status_code == 422
    assert not_a_date.json()["errors"][0]["path"] == "backfill.start"
    webhook = client.put(
        "/api/v1/triggers",
        json={**IDS, "triggerId": "hook", "backfill": {"start": "2024-05-01T00:00:00Z"}},
    )
    assert webhook.status_code == 422 and webhook.json()["errors"][0]["path"] == "backfill"
    for path, method in (("pause", "PUT"), ("unpause", "PUT"), ("delete", "POST")):
        none = client.request(method, f"/api/v1/triggers/backfill/{path}", json=IDS)
        assert none.status_code == 409 and "No backfill found" in none.json()["message"]
    not_locked = client.post("/api/v1/triggers/company.team/nightly/at-night/unlock")
    assert not_locked.status_code == 409 and "not locked" in not_locked.json()["message"]
    unknown_unlock = client.post("/api/v1/triggers/company.team/nightly/nope/unlock")
    assert unknown_unlock.status_code == 404
    assert requests(backends) == []


def test_backfill_create_pause_unpause_delete_and_unlock(
    client: TestClient, backends: Backends
) -> None:
    deploy(client)
    created = client.put(
        "/api/v1/triggers",
        json={
            **IDS,
            # no offset: the trigger's timezone (Paris, UTC+2 in May)
            "backfill": {
                "start": "2024-05-01T00:00:00",
                "end": "2024-05-03T00:00:00",
                "labels": [{"key": "k", "value": "v"}],
            },
        },
    )
    assert created.status_code == 200, created.text
    backfill = created.json()["backfill"]
    assert backfill["start"].startswith("2024-04-30T22:00:00")
    assert backfill["paused"] is False
    store(
        backends,
        backfill=BackfillState(
            start=datetime(2024, 4, 30, 22, tzinfo=UTC), end=datetime(2024, 5, 2, 22, tzinfo=UTC)
        ),
        evaluate_running_date=datetime(2024, 5, 1, tzinfo=UTC),
    )
    paused = client.put("/api/v1/triggers/backfill/pause", json=IDS)
    assert paused.status_code == 200 and paused.json()["backfill"]["paused"] is True
    unpaused = client.put("/api/v1/main/triggers/backfill/unpause", json=IDS)
    assert unpaused.status_code == 200 and unpaused.json()["backfill"]["paused"] is False
    deleted = client.post("/api/v1/triggers/backfill/delete", json=IDS)
    assert deleted.status_code == 200 and "backfill" not in deleted.json()
    bulk = client.post(
        "/api/v1/triggers/backfill/pause/by-triggers", json=[IDS, {**IDS, "triggerId": "hook"}]
    )
    assert bulk.status_code == 200 and bulk.json() == {"count": 1}
    unlocked = client.post("/api/v1/triggers/company.team/nightly/at-night/unlock")
    assert unlocked.status_code == 200 and "evaluateRunningDate" not in unlocked.json()
    # the repository still shows the lock (the scheduler has not answered): each sends again
    by_ids = client.post(
        "/api/v1/triggers/unlock/by-triggers", json=[IDS, {**IDS, "triggerId": "hook"}]
    )
    assert by_ids.status_code == 200 and by_ids.json() == {"count": 1}
    by_query = client.post("/api/v1/triggers/unlock/by-query", params={"namespace": "company"})
    assert by_query.status_code == 200 and by_query.json() == {"count": 1}
    sent = requests(backends)
    assert [(r.backfill_action, r.unlock) for r in sent] == [
        ("CREATE", False),
        ("PAUSE", False),
        ("UNPAUSE", False),
        ("DELETE", False),
        ("PAUSE", False),
        (None, True),
        (None, True),
        (None, True),
    ]
    assert sent[0].backfill is not None and sent[0].backfill.labels == {"k": "v"}
    listed = client.get("/api/v1/triggers/company.team/nightly")
    assert listed.status_code == 200 and listed.json()["total"] == 3
    assert client.get("/api/v1/triggers/company.team/nope").status_code == 404
