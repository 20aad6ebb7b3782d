"""Triggers in the browser: the flow's Triggers tab, the Triggers page and the dashboard's next
scheduled runs, fed by the real scheduler through the indexer."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.infra.waiting import wait_until
from tests.ui.conftest import create_flow, screenshot

# every 2 s, so that a last execution shows up quickly; the flow is deleted at the end so that
# it does not keep creating executions under the other tests of the session
TICKING = """id: ticking
namespace: ui.triggers
tasks:
  - id: tick
    type: io.kestra.plugin.core.log.Log
    message: tick
triggers:
  - id: every-two-seconds
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/2 * * * * *"
    withSeconds: true
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: k3y
  - id: nightly-off
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 * * *"
    disabled: true
"""


def test_triggers_show_next_date_last_execution_and_status(page: Page, api: httpx.Client) -> None:
    create_flow(api, TICKING)
    try:
        page.goto("/ui/flows/edit/ui.triggers/ticking/triggers")
        table = page.get_by_test_id("triggers-table")
        expect(table.locator("tbody tr")).to_have_count(3)
        ticking = table.locator("[data-trigger='every-two-seconds']")
        expect(ticking.locator("[data-col=status]")).to_have_text("enabled")
        expect(table.locator("[data-trigger='nightly-off'] [data-col=status]")).to_have_text(
            "disabled (in the flow)"
        )
        expect(table.locator("[data-trigger='hook'] [data-col=next]")).to_have_text("—")

        # the scheduler's state arrives through the indexer: wait for it on the API, then reload
        def ticked() -> bool:
            found = api.get("/triggers/search", params={"q": "every-two-seconds"}).json()
            context = found["results"][0]["triggerContext"] if found["results"] else {}
            return bool(context.get("lastExecutionId") and context.get("nextExecutionDate"))

        wait_until(ticked, 60, "the schedule fired and its state was indexed", interval=0.5)
        page.reload()
        expect(ticking.locator("[data-col=next]")).to_have_text(re.compile(r"\d{1,2}:\d{2}:\d{2}"))
        expect(ticking.locator("[data-col=last] a")).to_have_text(re.compile(r"^\w{8}$"))
        screenshot(page, "flow-triggers")
        ticking.locator("[data-col=last] a").click()
        expect(page).to_have_url(re.compile(r"/ui/executions/ui\.triggers/ticking/"))
        expect(page.get_by_test_id("execution-state")).to_be_visible()

        page.goto("/ui/admin/triggers?q=ticking")
        table = page.get_by_test_id("triggers-table")
        expect(table.locator("tbody tr")).to_have_count(3)
        expect(table).to_contain_text("ui.triggers.ticking")
        screenshot(page, "triggers")
        page.get_by_test_id("trigger-filters").locator("[name=q]").fill("no-such-trigger")
        page.get_by_test_id("trigger-filters").get_by_role("button", name="Filter").click()
        expect(table).to_contain_text("No trigger.")

        page.goto("/ui/")
        upcoming = page.get_by_test_id("next-runs")
        expect(upcoming).to_contain_text("ui.triggers.ticking")
        expect(upcoming).to_contain_text("every-two-seconds")
        expect(upcoming).not_to_contain_text("hook")  # no next date: not scheduled
        screenshot(page, "dashboard-next-runs")
    finally:
        assert api.delete("/flows/ui.triggers/ticking").status_code < 300
