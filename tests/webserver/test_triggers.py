"""``/triggers/search``: the triggers of the deployed flows with the scheduler's state."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from common.backends import Backends
from common.models.trigger import TriggerState
from tests.webserver.conftest import both_repositories

SCHEDULED = """id: nightly
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: at-night
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
    disabled: true
"""

HOOKED = """id: hooked
namespace: company.other
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: abc
"""

NEXT = datetime(2030, 1, 2, 2, tzinfo=UTC)


def deploy(client: TestClient, source: str) -> None:
    response = client.post(
        "/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"}
    )
    assert response.status_code == 200, response.text


@both_repositories
def test_search_lists_every_trigger_with_its_state(client: TestClient, backends: Backends) -> None:
    deploy(client, SCHEDULED)
    deploy(client, HOOKED)
    backends.repositories.triggers.save_many(
        [
            TriggerState(
                namespace="company.team",
                flow_id="nightly",
                trigger_id="at-night",
                next_execution_date=NEXT,
                last_execution_id="e42",
                last_execution_date=datetime(2030, 1, 1, 2, tzinfo=UTC),
                date=datetime(2030, 1, 1, 2, 0, 1, tzinfo=UTC),
                fingerprint="internal",
            )
        ]
    )

    def search(**params: object) -> dict:
        response = client.get("/api/v1/triggers/search", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    everything = search()
    assert everything["total"] == 3
    ids = [
        (r["triggerContext"]["flowId"], r["triggerContext"]["triggerId"])
        for r in everything["results"]
    ]
    assert ids == [("hooked", "hook"), ("nightly", "at-night"), ("nightly", "hourly")]
    night = everything["results"][1]
    assert night["abstractTrigger"]["type"].endswith("Schedule")
    assert night["abstractTrigger"]["cron"] == "0 2 * * *"
    context = night["triggerContext"]
    assert context["nextExecutionDate"].startswith("2030-01-02T02:00:00")
    assert (context["lastExecutionId"], context["disabled"]) == ("e42", False)
    assert "fingerprint" not in context
    hourly = everything["results"][2]
    assert hourly["triggerDisabled"] is True and "nextExecutionDate" not in hourly["triggerContext"]

    assert search(namespace="company.team", flowId="nightly")["total"] == 2
    assert search(namespace="company.other")["results"][0]["triggerContext"]["triggerId"] == "hook"
    assert search(q="NIGHT")["total"] == 2
    soonest = search(sort="nextExecutionDate:asc", size=1)
    assert soonest["total"] == 3
    assert [r["triggerContext"]["triggerId"] for r in soonest["results"]] == ["at-night"]
    assert [r["triggerContext"]["triggerId"] for r in search(size=2, page=2)["results"]] == [
        "hourly"
    ]
    bad = client.get("/api/v1/triggers/search", params={"sort": "color:asc"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "sort"

    # a deleted flow takes its triggers with it
    assert client.delete("/api/v1/flows/company.other/hooked").status_code < 300
    assert search()["total"] == 2
