"""The topology in the browser: nested flowables drawn as groups, tasks coloured by state."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.ui.conftest import create_flow, run_flow, screenshot

NESTED = """id: nested
namespace: ui.topology
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
    disabled: true
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: left
        type: io.kestra.plugin.core.log.Log
        message: l
      - id: inner
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: deep
            type: io.kestra.plugin.core.log.Log
            message: d
  - id: last
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: the end
"""


def _inside(page: Page, child: str, parent: str) -> bool:
    inner = page.locator(child).bounding_box()
    outer = page.locator(parent).bounding_box()
    assert inner is not None and outer is not None
    return (
        outer["x"] <= inner["x"]
        and outer["y"] <= inner["y"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def test_flow_topology_draws_nested_flowables_as_groups(page: Page, api: httpx.Client) -> None:
    create_flow(api, NESTED)
    page.goto("/ui/flows/edit/ui.topology/nested/topology")
    topology = page.get_by_test_id("topology")
    for task_id in ("hourly", "first", "fan", "left", "inner", "deep", "last"):
        expect(topology.locator(f".topo-task[data-task='{task_id}']")).to_be_visible()
    expect(topology.locator(".topo-cluster")).to_have_count(3)  # triggers, fan, inner
    assert _inside(page, ".topo-task[data-task='deep']", ".topo-cluster[data-cluster='inner']")
    assert _inside(page, ".topo-cluster[data-cluster='inner']", ".topo-cluster[data-cluster='fan']")
    assert not _inside(page, ".topo-task[data-task='first']", ".topo-cluster[data-cluster='fan']")
    screenshot(page, "flow-topology")

    page.locator(".tabs").get_by_role("link", name="Triggers").click()
    trigger = page.get_by_test_id("triggers-table").locator("[data-trigger='hourly']")
    expect(trigger).to_contain_text("cron: 0 * * * *")
    expect(trigger).to_contain_text("disabled")


def test_execution_topology_is_coloured_by_state(page: Page, api: httpx.Client) -> None:
    create_flow(api, NESTED.replace("id: nested", "id: coloured"))
    execution = run_flow(api, "ui.topology", "coloured")
    assert execution["state"]["current"] == "FAILED"
    page.goto(f"/ui/executions/ui.topology/coloured/{execution['id']}/topology")
    topology = page.get_by_test_id("topology")
    expect(topology.locator(".topo-task[data-task='deep']")).to_have_attribute(
        "data-state", "SUCCESS"
    )
    expect(topology.locator(".topo-task[data-task='last']")).to_have_attribute(
        "data-state", "FAILED"
    )
    expect(topology.locator(".topo-task[data-task='last']")).to_have_class("topo-task topo-failed")
    screenshot(page, "execution-topology")
