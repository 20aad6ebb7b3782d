"""The Logs page: search across executions by level, namespace, flow, task, text, and follow."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.infra.waiting import wait_until
from tests.ui.conftest import create_flow, run_flow, screenshot

NOISY = """id: noisy
namespace: ui.logs
inputs:
  - id: tag
    type: STRING
tasks:
  - id: chatter
    type: io.kestra.plugin.core.log.Log
    message: "chatter {{ inputs.tag }}"
  - id: alarm
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message: "disk almost full {{ inputs.tag }}"
"""

QUIET = """id: quiet
namespace: ui.logs.other
tasks:
  - id: chatter
    type: io.kestra.plugin.core.log.Log
    message: "quiet line"
"""


def test_search_logs_across_executions_then_follow(page: Page, api: httpx.Client) -> None:
    create_flow(api, NOISY)
    create_flow(api, QUIET)
    first = run_flow(api, "ui.logs", "noisy", tag="first")
    run_flow(api, "ui.logs", "noisy", tag="second")
    run_flow(api, "ui.logs.other", "quiet")
    # an ended execution's logs may reach the repository a moment after its last state
    wait_until(
        lambda: api.get("/logs/search", params={"namespace": "ui.logs"}).json()["total"] == 5,
        30,
        "the five log lines indexed",
        interval=0.2,
    )

    page.goto("/ui/logs?namespace=ui.logs")
    logs = page.get_by_test_id("logs")
    # namespace is a prefix: ui.logs.other is in it
    expect(logs).to_contain_text("quiet line")
    expect(logs).to_contain_text("disk almost full second")
    expect(logs.locator(".log-line").first).to_contain_text("quiet line")  # newest first
    screenshot(page, "logs")

    filters = page.get_by_test_id("log-filters")
    filters.locator("[name=minLevel]").select_option("WARN")
    expect(logs.locator(".log-line")).to_have_count(2)
    expect(logs).not_to_contain_text("chatter")
    expect(page).to_have_url(re.compile(r"minLevel=WARN"))

    filters.locator("[name=minLevel]").select_option("")
    filters.locator("[name=flowId]").fill("noisy")
    filters.locator("[name=taskId]").fill("chatter")
    filters.locator("[name=q]").fill("FIRST")
    filters.get_by_role("button", name="Filter").click()
    expect(logs.locator(".log-line")).to_have_count(1)
    expect(logs).to_contain_text("chatter first")

    # a line links to its execution's logs
    logs.get_by_role("link", name="ui.logs.noisy").click()
    expect(page).to_have_url(re.compile(rf"/{first['id']}/logs$"))
    expect(page.get_by_test_id("logs")).to_contain_text("disk almost full first")

    # follow: new lines matching the filters arrive with no reload
    page.goto("/ui/logs?namespace=ui.logs&minLevel=WARN")
    expect(logs.locator(".log-line")).to_have_count(2)
    page.get_by_test_id("follow").click()
    expect(page.get_by_test_id("log-total")).to_contain_text("following live")
    live = api.post("/executions/ui.logs/noisy", data={"tag": "live"})
    assert live.status_code == 200, live.text
    expect(logs.locator(".log-line").first).to_contain_text("disk almost full live")
    expect(logs).not_to_contain_text("chatter live")  # below WARN
    expect(page.get_by_test_id("log-total")).to_contain_text("(1 new)")
    screenshot(page, "logs-follow")
    page.get_by_test_id("follow").click()
    expect(page.get_by_test_id("log-total")).not_to_contain_text("following")
