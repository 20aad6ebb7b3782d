"""Executions in the browser: execute with inputs, live logs, Gantt, restart, list filters."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.infra.waiting import wait_until
from tests.ui.conftest import create_flow, run_flow, screenshot

PAUSING = """id: live
namespace: ui.live
inputs:
  - id: name
    type: STRING
  - id: times
    type: INT
    defaults: 2
  - id: mood
    type: ENUM
    values: [HAPPY, GRUMPY]
    defaults: HAPPY
tasks:
  - id: before
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }} x{{ inputs.times }} {{ inputs.mood }}"
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "Resumed for {{ inputs.name }}"
outputs:
  - id: greeting
    type: STRING
    value: "{{ inputs.name }} is {{ inputs.mood }}"
"""

FAILING = """id: flaky
namespace: ui.restart
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "boom for the UI test"
"""


def log_flow(namespace: str, flow_id: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - id: t\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )


def fail_flow(namespace: str, flow_id: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - id: t\n"
        "    type: io.kestra.plugin.core.execution.Fail\n"
    )


def test_execute_with_inputs_then_watch_live_logs_and_the_gantt(
    page: Page, api: httpx.Client
) -> None:
    create_flow(api, PAUSING)
    page.goto("/ui/flows/edit/ui.live/live")
    page.get_by_role("button", name="Execute").click()
    drawer = page.get_by_test_id("execute-drawer")
    expect(drawer.locator("#input-times")).to_have_value("2")
    drawer.locator("#input-name").fill("Ada")
    drawer.locator("#input-times").fill("3")
    drawer.locator("#input-mood").select_option("GRUMPY")
    screenshot(page, "flow-execute-form")
    drawer.get_by_role("button", name="Execute").click()

    expect(page).to_have_url(re.compile(r"/ui/executions/ui\.live/live/[^/]+/gantt$"))
    execution_id = page.url.rsplit("/", 2)[-2]
    expect(page.get_by_test_id("execution-state")).to_have_text("PAUSED")
    gantt = page.get_by_test_id("gantt")
    expect(gantt.locator("[data-task='before'] .gantt-bar")).to_have_class(re.compile("bg-success"))
    expect(gantt.locator("[data-task='wait'] .gantt-bar")).to_have_class(re.compile("bg-paused"))
    screenshot(page, "execution-gantt")

    page.get_by_role("link", name="Logs", exact=True).nth(1).click()
    logs = page.get_by_test_id("logs")
    expect(logs).to_contain_text("Hello Ada x3 GRUMPY")
    expect(logs).not_to_contain_text("Resumed for Ada")
    # the page stays open: the next line arrives over the stream, with no reload
    response = api.post(f"/executions/{execution_id}/resume")
    assert response.status_code < 300, response.text
    expect(logs).to_contain_text("Resumed for Ada")
    expect(page.get_by_test_id("execution-state")).to_have_text("SUCCESS")
    screenshot(page, "execution-logs")

    page.get_by_placeholder("Search logs").fill("resumed")
    expect(logs.locator(".log-line")).to_have_count(1)
    page.get_by_placeholder("Search logs").fill("")
    page.get_by_test_id("log-task").select_option("before")
    expect(logs.locator(".log-line")).to_have_count(1)
    expect(logs).to_contain_text("Hello Ada")
    page.get_by_test_id("log-task").select_option("")

    # the level filter asks the server again: nothing is at ERROR
    page.get_by_test_id("log-level").select_option("ERROR")
    expect(logs).not_to_contain_text("Hello Ada")
    page.get_by_test_id("log-level").select_option("INFO")
    expect(logs).to_contain_text("Hello Ada x3 GRUMPY")

    page.get_by_role("link", name="Overview").click()
    inputs = page.get_by_test_id("execution-inputs")
    expect(inputs).to_contain_text("Ada")
    expect(inputs).to_contain_text("GRUMPY")
    expect(page.get_by_test_id("task-runs").locator("tbody tr")).to_have_count(3)
    screenshot(page, "execution-overview")

    page.get_by_role("link", name="Outputs").click()
    expect(page.locator("main")).to_contain_text("Ada is GRUMPY")
    screenshot(page, "execution-outputs")


def test_restart_a_failed_execution(page: Page, api: httpx.Client) -> None:
    create_flow(api, FAILING)
    failed = run_flow(api, "ui.restart", "flaky")
    assert failed["state"]["current"] == "FAILED"

    page.goto(f"/ui/executions/ui.restart/flaky/{failed['id']}")
    state = page.get_by_test_id("execution-state")
    expect(state).to_have_text("FAILED")
    boom = page.get_by_test_id("task-runs").locator("[data-task='boom']")
    expect(boom.locator(".attempt")).to_have_count(1)
    expect(boom).to_contain_text("boom for the UI test")
    page.get_by_role("button", name="Restart").click()

    # the same execution runs the failed task again: a second attempt, which fails again
    expect(boom.locator(".attempt")).to_have_count(2)
    expect(state).to_have_text("FAILED")
    expect(page.get_by_role("button", name="Restart")).to_be_visible()
    screenshot(page, "execution-restarted")
    stored = api.get(f"/executions/{failed['id']}").json()
    assert len(stored["taskRunList"][0]["attempts"]) == 2


def test_filter_the_executions_list(page: Page, api: httpx.Client) -> None:
    create_flow(api, log_flow("ui.filter.alpha", "quiet"))
    create_flow(api, fail_flow("ui.filter.beta", "noisy"))
    ok = [run_flow(api, "ui.filter.alpha", "quiet", labels=(f"team:t{i}",)) for i in range(2)]
    bad = run_flow(api, "ui.filter.beta", "noisy")

    page.goto("/ui/executions")
    table = page.get_by_test_id("executions-table")
    page.locator("input[name=namespace]").fill("ui.filter")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr[data-execution]")).to_have_count(3)
    expect(page.get_by_test_id("total")).to_have_text("3 executions")
    screenshot(page, "executions-list")

    page.locator("select[name=state]").select_option("FAILED")
    expect(table.locator("tbody tr[data-execution]")).to_have_count(1)
    expect(table.locator(f"[data-execution='{bad['id']}']")).to_be_visible()
    expect(page).to_have_url(re.compile(r"state=FAILED"))

    page.locator("select[name=state]").select_option("")
    page.locator("input[name=flowId]").fill("quiet")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr[data-execution]")).to_have_count(2)

    # free text, from a bookmarked URL
    page.goto(f"/ui/executions?q={ok[0]['id']}")
    expect(table.locator("tbody tr[data-execution]")).to_have_count(1)
    expect(table.locator(f"[data-execution='{ok[0]['id']}']")).to_be_visible()
    expect(page.locator("input[name=q]")).to_have_value(ok[0]["id"])

    page.goto("/ui/executions?namespace=ui.filter")
    page.locator("input[name=labels]").fill("team:t1")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr[data-execution]")).to_have_count(1)
    expect(table.locator(f"[data-execution='{ok[1]['id']}']")).to_be_visible()

    page.locator("input[name=labels]").fill("")
    page.locator("input[name=startDate]").fill("2000-01-01T00:00")
    page.locator("input[name=endDate]").fill("2000-12-31T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(table).to_contain_text("No execution matches these filters.")
    page.locator("input[name=endDate]").fill("")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr[data-execution]")).to_have_count(3)

    page.locator("input[name=q]").fill("no-such-execution-anywhere")
    page.get_by_role("button", name="Filter").click()
    expect(table).to_contain_text("No execution matches these filters.")


def test_api_errors_read_as_messages(page: Page) -> None:
    page.goto("/ui/executions/ui.none/none/does-not-exist")
    expect(page.get_by_role("alert")).to_contain_text("does-not-exist")
    expect(page.get_by_role("alert")).to_contain_text("not found")
    screenshot(page, "execution-not-found")


def test_dashboard_chart_comes_from_the_statistics_api(page: Page, api: httpx.Client) -> None:
    create_flow(api, fail_flow("ui.dash", "broken"))
    failed = run_flow(api, "ui.dash", "broken")
    assert failed["state"]["current"] == "FAILED"
    daily = api.get("/stats/executions/daily").json()
    total = sum(sum(d["executionCounts"].values()) for d in daily)
    ended = sum(
        n
        for d in daily
        for state, n in d["executionCounts"].items()
        if state in ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")
    )
    succeeded = sum(d["executionCounts"].get(s, 0) for d in daily for s in ("SUCCESS", "WARNING"))

    page.goto("/ui/")
    chart = page.get_by_test_id("executions-chart")
    expect(chart).to_have_attribute("data-total", str(total))
    expect(chart.locator("canvas")).to_be_visible()
    expect(page.get_by_test_id("success-ratio")).to_have_text(f"{round(succeeded / ended * 100)}%")
    failures = page.get_by_test_id("failures-24h")
    expect(failures.get_by_role("link", name="ui.dash.broken").first).to_be_visible()
    expect(page.get_by_test_id("running-now")).to_be_visible()
    screenshot(page, "dashboard")

    # the range picker asks the statistics API again: today's executions are in any range
    page.get_by_test_id("range").select_option("7")
    expect(chart).to_have_attribute("data-total", str(total))


def test_kill_a_paused_execution(page: Page, api: httpx.Client) -> None:
    create_flow(api, PAUSING.replace("id: live", "id: killable"))
    response = api.post("/executions/ui.live/killable", data={"name": "Bob"})
    assert response.status_code == 200, response.text
    execution_id = response.json()["id"]
    page.goto(f"/ui/executions/ui.live/killable/{execution_id}")
    state = page.get_by_test_id("execution-state")
    expect(state).to_have_text("PAUSED")
    page.get_by_role("button", name="Kill").click()
    expect(state).to_have_text("KILLED")
    expect(page.get_by_role("button", name="Kill")).to_have_count(0)
    expect(page.get_by_role("button", name="Restart")).to_be_visible()


def test_page_through_the_executions_list(page: Page, api: httpx.Client) -> None:
    create_flow(api, log_flow("ui.pages", "many"))
    created = [api.post("/executions/ui.pages/many") for _ in range(27)]
    assert all(r.status_code == 200 for r in created)

    page.goto("/ui/executions?namespace=ui.pages")
    table = page.get_by_test_id("executions-table")
    expect(page.get_by_test_id("total")).to_have_text("27 executions")
    expect(table.locator("tbody tr[data-execution]")).to_have_count(25)
    first_page = set(
        table.locator("tbody tr[data-execution]").evaluate_all(
            "rows => rows.map(r => r.dataset.execution)"
        )
    )
    page.get_by_role("button", name="Next").click()
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page.get_by_text("Page 2 / 2")).to_be_visible()
    expect(table.locator("tbody tr[data-execution]")).to_have_count(2)
    second_page = set(
        table.locator("tbody tr[data-execution]").evaluate_all(
            "rows => rows.map(r => r.dataset.execution)"
        )
    )
    assert first_page.isdisjoint(second_page)
    assert first_page | second_page == {r.json()["id"] for r in created}
    page.get_by_role("button", name="Previous").click()
    expect(table.locator("tbody tr[data-execution]")).to_have_count(25)


UPLOAD = """id: upload
namespace: ui.files
inputs:
  - id: doc
    type: FILE
  - id: verbose
    type: BOOLEAN
    defaults: false
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: "got {{ inputs.doc }} verbose={{ inputs.verbose }}"
"""


def test_execute_with_a_file_input(page: Page, api: httpx.Client) -> None:
    create_flow(api, UPLOAD)
    page.goto("/ui/flows/edit/ui.files/upload")
    page.get_by_role("button", name="Execute").click()
    drawer = page.get_by_test_id("execute-drawer")
    drawer.get_by_role("button", name="Execute").click()
    expect(drawer.locator(".field-error")).to_have_text("required")  # checked before any request
    drawer.locator("#input-doc").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"uploaded by the UI"}]
    )
    drawer.locator("#input-verbose").check()
    drawer.get_by_role("button", name="Execute").click()

    expect(page).to_have_url(re.compile(r"/ui/executions/ui\.files/upload/[^/]+/gantt$"))
    expect(page.get_by_test_id("execution-state")).to_have_text("SUCCESS")
    page.get_by_role("link", name="Overview").click()
    inputs = page.get_by_test_id("execution-inputs")
    expect(inputs).to_contain_text("true")
    link = inputs.get_by_role("link", name="notes.txt")
    href = link.get_attribute("href")
    assert href is not None
    download = httpx.get(page.url.split("/ui/")[0] + href, timeout=30)
    assert download.status_code == 200, download.text
    assert download.content == b"uploaded by the UI"


APPROVAL = """id: approval
namespace: ui.resume
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: comment
        type: STRING
      - id: approved
        type: BOOLEAN
        defaults: false
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: >-
      approved={{ outputs.wait.onResume.approved }}
      comment={{ outputs.wait.onResume.comment }}
"""


def test_resume_with_inputs_then_replay_from_a_task(page: Page, api: httpx.Client) -> None:
    create_flow(api, APPROVAL)
    response = api.post("/executions/ui.resume/approval")
    assert response.status_code == 200, response.text
    execution_id = response.json()["id"]
    page.goto(f"/ui/executions/ui.resume/approval/{execution_id}")
    state = page.get_by_test_id("execution-state")
    expect(state).to_have_text("PAUSED")

    page.get_by_role("button", name="Resume").click()
    drawer = page.get_by_test_id("resume-drawer")
    drawer.locator("#input-comment").fill("ship it")
    drawer.locator("#input-approved").check()
    screenshot(page, "execution-resume-form")
    drawer.get_by_role("button", name="Resume").click()
    expect(state).to_have_text("SUCCESS")
    page.get_by_role("link", name="Logs", exact=True).nth(1).click()
    expect(page.get_by_test_id("logs")).to_contain_text(
        re.compile(r"approved=(true|True) comment=ship it")
    )

    page.get_by_role("link", name="Overview").click()
    page.get_by_test_id("task-runs").locator("[data-task='after']").get_by_role(
        "button", name="Replay from here"
    ).click()
    expect(page).not_to_have_url(re.compile(execution_id))
    replayed_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(state).to_have_text("SUCCESS")
    replayed = api.get(f"/executions/{replayed_id}").json()
    assert replayed["originalId"] == execution_id
    assert [tr["taskId"] for tr in replayed["taskRunList"]] == ["wait", "after"]


def test_workers_page_lists_the_live_workers(page: Page, api: httpx.Client) -> None:
    workers = wait_until(lambda: api.get("/workers").json(), 60, "a worker heartbeat")
    page.goto("/ui/workers")
    table = page.get_by_test_id("workers-table")
    expect(table.locator(f"[data-worker='{workers[0]['workerId']}']")).to_contain_text("UP")
    screenshot(page, "workers")


def test_bulk_restart_from_the_list(page: Page, api: httpx.Client) -> None:
    create_flow(api, fail_flow("ui.bulk", "fragile"))
    failed = [run_flow(api, "ui.bulk", "fragile")["id"] for _ in range(2)]
    create_flow(api, log_flow("ui.bulk", "fine"))
    fine = run_flow(api, "ui.bulk", "fine")["id"]

    page.goto("/ui/executions?namespace=ui.bulk")
    table = page.get_by_test_id("executions-table")
    expect(table.locator("tbody tr[data-execution]")).to_have_count(3)
    page.get_by_label("Select all").check()
    expect(page.get_by_test_id("bulk-bar")).to_contain_text("3 selected")
    screenshot(page, "executions-bulk-selection")
    page.get_by_test_id("bulk-bar").get_by_role("button", name="Restart").click()
    expect(page.get_by_test_id("bulk-message")).to_have_text("2 restarted · 1 skipped (state)")

    def restarted_twice() -> bool:
        executions = [api.get(f"/executions/{i}").json() for i in failed]
        return all(
            e["metadata"]["attemptNumber"] == 2 and e["state"]["current"] == "FAILED"
            for e in executions
        )

    wait_until(restarted_twice, 60, "both failed executions restarted and failed again")
    assert api.get(f"/executions/{fine}").json()["metadata"]["attemptNumber"] == 1
