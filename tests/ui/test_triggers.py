"""Triggers in the browser: the flow's Triggers tab, the Triggers page and the dashboard's next
scheduled runs, fed by the real scheduler through the indexer."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

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


# `every-second` is switched off and on and backfilled from the UI; `clock` keeps firing and
# tells the test that time went by (no sleep); `after-other` is a Flow trigger, which the API
# does not toggle (the executor's, from the flow's source)
TOGGLED = """id: toggled
namespace: ui.triggers
tasks:
  - id: tick
    type: io.kestra.plugin.core.log.Log
    message: tick
triggers:
  - id: every-second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
  - id: clock
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/2 * * * * *"
    withSeconds: true
  - id: after-other
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlowCondition
        namespace: ui.triggers
        flowId: other
"""


def _context(api: httpx.Client, trigger_id: str) -> dict:
    found = api.get("/triggers/search", params={"flowId": "toggled", "q": trigger_id}).json()
    return next(
        r["triggerContext"]
        for r in found["results"]
        if r["triggerContext"]["triggerId"] == trigger_id
    )


def _scheduled(api: httpx.Client, trigger_id: str, label: str | None = None) -> list[str]:
    """The schedule dates of the flow's executions created by ``trigger_id``, sorted."""
    params: dict = {"namespace": "ui.triggers", "flowId": "toggled", "size": 1000}
    if label:
        params["labels"] = [label]
    found = api.get("/executions/search", params=params).json()["results"]
    return sorted(
        e["scheduleDate"]
        for e in found
        if (e.get("trigger") or {}).get("id") == trigger_id and e.get("scheduleDate")
    )


def _later_than(dates: list[str], limit: str) -> list[str]:
    return [d for d in dates if _instant(d) >= _instant(limit)]


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _local(page: Page, offset_seconds: int) -> str:
    """A datetime-local value in the browser's time zone, ``offset_seconds`` from now."""
    return page.evaluate(
        """(offset) => {
          const d = new Date(Date.now() + offset * 1000);
          const p = (n) => String(n).padStart(2, "0");
          return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T` +
            `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
        }""",
        offset_seconds,
    )


def test_toggle_and_backfill_a_schedule_from_the_ui(page: Page, api: httpx.Client) -> None:
    create_flow(api, TOGGLED)
    try:
        wait_until(lambda: _scheduled(api, "every-second"), 60, "every-second fired", interval=0.5)
        page.goto("/ui/flows/edit/ui.triggers/toggled/triggers")
        table = page.get_by_test_id("triggers-table")
        row = table.locator("[data-trigger='every-second']")
        switch = row.get_by_role("switch")
        expect(switch).to_be_checked()
        # the executor's Flow trigger has no switch: it is enabled or disabled in the source
        flow_row = table.locator("[data-trigger='after-other']")
        expect(flow_row.locator("[data-col=enabled]")).to_have_text("in the flow")
        expect(flow_row.get_by_role("switch")).to_have_count(0)

        # disable: the row shows the answer at once, the scheduler applies it on its next tick
        switch.click()
        expect(switch).not_to_be_checked()
        expect(row.locator("[data-col=state]")).to_have_text("disabled")
        off = wait_until(
            lambda: (c := _context(api, "every-second"))["disabled"] and c,
            30,
            "the scheduler applied the disable",
            interval=0.3,
        )
        stopped_at = off["nextExecutionDate"]  # it does not move while disabled

        # it stops firing: the clock goes on for 4 more seconds and every-second does not
        wait_until(
            lambda: any(
                _instant(d) >= _instant(stopped_at) + timedelta(seconds=4)
                for d in _scheduled(api, "clock")
            ),
            60,
            "the clock fired 4 s after every-second was disabled",
            interval=0.5,
        )
        assert _later_than(_scheduled(api, "every-second"), stopped_at) == []
        page.reload()
        expect(switch).not_to_be_checked()
        screenshot(page, "flow-triggers-disabled")

        # enable again: it fires anew (from now on: the dates missed while disabled never fire)
        switch.click()
        expect(switch).to_be_checked()
        expect(row.locator("[data-col=state]")).to_have_text("enabled")
        wait_until(
            lambda: _later_than(_scheduled(api, "every-second"), stopped_at),
            60,
            "every-second fired again once enabled",
            interval=0.5,
        )

        # a backfill in the future is refused; the message names the field
        row.locator("[data-action=backfill]").click()
        drawer = page.get_by_test_id("backfill-drawer")
        drawer.locator("[name=start]").fill(_local(page, 3600))
        drawer.get_by_role("button", name="Execute backfill").click()
        expect(drawer.get_by_role("alert")).to_contain_text("backfill.start")
        expect(drawer.get_by_role("alert")).to_contain_text("in the future")

        # a backfill over a past interval: 10 minutes of per-second dates, one per tick
        start, end = _local(page, -1200), _local(page, -600)
        drawer.locator("[name=start]").fill(start)
        drawer.locator("[name=end]").fill(end)
        drawer.get_by_role("button", name="+ Label").click()
        drawer.locator("[name=label-key-0]").fill("origin")
        drawer.locator("[name=label-value-0]").fill("ui-backfill")
        screenshot(page, "trigger-backfill-form")
        drawer.get_by_role("button", name="Execute backfill").click()
        expect(drawer).to_have_count(0)
        backfill = row.locator("[data-col=backfill]")
        expect(backfill).to_contain_text("backfill running")
        backfilled = wait_until(
            lambda: (
                len(found := _scheduled(api, "every-second", "origin:ui-backfill")) >= 3 and found
            ),
            60,
            "backfill executions appeared",
            interval=0.5,
        )
        assert all(_instant(d) < _instant(stopped_at) for d in backfilled)  # past dates
        # its progress moves in the table (re-read while it runs)
        expect(row.get_by_role("progressbar")).not_to_have_attribute("aria-valuenow", "0")
        screenshot(page, "trigger-backfill-running")

        # pause: no date after the one it stopped at is replayed
        row.locator("[data-action=pause]").click()
        expect(backfill).to_contain_text("backfill paused")
        paused = wait_until(
            lambda: (
                ((c := _context(api, "every-second")).get("backfill") or {}).get("paused")
                and c["backfill"]
            ),
            30,
            "the scheduler paused the backfill",
            interval=0.3,
        )
        resume_at = paused["currentDate"]
        clock_now = _scheduled(api, "clock")[-1]
        wait_until(
            lambda: any(
                _instant(d) >= _instant(clock_now) + timedelta(seconds=4)
                for d in _scheduled(api, "clock")
            ),
            60,
            "the clock fired 4 s after the pause",
            interval=0.5,
        )
        assert _later_than(_scheduled(api, "every-second", "origin:ui-backfill"), resume_at) == []
        expect(row.locator("[data-action=unpause]")).to_be_visible()
        screenshot(page, "trigger-backfill-paused")

        # unpause: it goes on from where it stopped
        row.locator("[data-action=unpause]").click()
        expect(backfill).to_contain_text("backfill running")
        wait_until(
            lambda: _later_than(_scheduled(api, "every-second", "origin:ui-backfill"), resume_at),
            60,
            "the backfill replayed dates again once unpaused",
            interval=0.5,
        )

        # delete (while it runs): gone, the trigger can be backfilled again
        row.locator("[data-action=delete]").click()
        expect(backfill).to_have_count(0)
        expect(row.locator("[data-action=backfill]")).to_be_visible()
        wait_until(
            lambda: not _context(api, "every-second").get("backfill"),
            30,
            "the scheduler deleted the backfill",
            interval=0.3,
        )
        page.reload()
        expect(row.locator("[data-action=backfill]")).to_be_visible()
        expect(row.locator("[data-col=backfill]")).to_have_count(0)

        # the Triggers page offers the same switch
        page.goto("/ui/admin/triggers?q=every-second")
        row = page.get_by_test_id("triggers-table").locator("[data-trigger='every-second']")
        expect(row).to_contain_text("ui.triggers.toggled")
        row.get_by_role("switch").click()
        expect(row.get_by_role("switch")).not_to_be_checked()
        wait_until(
            lambda: _context(api, "every-second")["disabled"],
            30,
            "disabled from the Triggers page",
            interval=0.3,
        )
        screenshot(page, "triggers-toggled")
    finally:
        assert api.delete("/flows/ui.triggers/toggled").status_code < 300
