"""Flows in the browser: the editor (validation at the line, then a save) and the list."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.ui.conftest import create_flow, screenshot

INVALID = """id: greeter
namespace: ui.editor
description: Says hello

inputs:
  - id: name
    type: STRING

tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "Hello {{ inputs.name }}"
    levle: INFO
"""
INVALID_LINE = 13  # `levle`, an unknown property
VALID = INVALID.replace("    levle: INFO\n", "")


def replace_source(page: Page, source: str) -> None:
    page.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    # one input event: CodeMirror does not re-indent pasted text line by line as it would typing
    page.keyboard.insert_text(source)
    expect(page.locator(".cm-line").nth(1)).to_have_text(source.splitlines()[1])


def test_create_a_flow_in_the_editor_with_a_validation_error_at_its_line(page: Page) -> None:
    page.goto("/ui/flows/new")
    replace_source(page, INVALID)
    page.get_by_test_id("save").click()

    banner = page.get_by_role("alert")
    expect(banner).to_contain_text("tasks[0].levle")
    expect(banner).to_contain_text(f"line {INVALID_LINE}")
    # the diagnostic sits on that line of the editor: underlined there, and marked in its gutter
    expect(page.locator(".cm-line", has=page.locator(".cm-lintRange-error"))).to_have_text(
        "    levle: INFO"
    )
    marker = page.locator(".cm-lint-marker-error")
    expect(marker).to_have_count(1)
    number = page.locator(
        ".cm-lineNumbers .cm-gutterElement", has_text=re.compile(rf"^{INVALID_LINE}$")
    )
    marker_box, number_box = marker.bounding_box(), number.bounding_box()
    assert marker_box is not None and number_box is not None
    assert abs(marker_box["y"] - number_box["y"]) < number_box["height"]
    screenshot(page, "flow-editor-validation-error")

    replace_source(page, VALID)
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_have_text("Saved revision 1")
    expect(page).to_have_url(re.compile(r"/ui/flows/edit/ui\.editor/greeter$"))
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(page.locator(".cm-lint-marker-error")).to_have_count(0)
    screenshot(page, "flow-editor-saved")

    # a second save is a new revision of the same flow
    replace_source(page, VALID.replace("Says hello", "Says hello again"))
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("saved")).to_have_text("Saved revision 2")

    # the revisions tab compares the previous revision with the latest
    page.get_by_role("link", name="Revisions").click()
    diff = page.get_by_test_id("revision-diff")
    expect(diff.locator(".diff-del .diff-text")).to_have_text("description: Says hello")
    expect(diff.locator(".diff-del .diff-no").first).to_have_text("3")
    expect(diff.locator(".diff-add .diff-text")).to_have_text("description: Says hello again")
    screenshot(page, "flow-revisions")


def test_flows_list_searches_and_walks_the_namespace_tree(page: Page, api: httpx.Client) -> None:
    for namespace, flow_id in [("ui.tree.sales", "orders"), ("ui.tree.hr", "payroll")]:
        create_flow(
            api,
            f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - id: t\n"
            "    type: io.kestra.plugin.core.log.Log\n    message: hi\n",
        )
    page.goto("/ui/flows")
    table = page.get_by_test_id("flows-table")
    expect(table.locator("[data-flow='ui.tree.sales.orders']")).to_be_visible()
    expect(table.locator("[data-flow='ui.tree.hr.payroll']")).to_be_visible()
    screenshot(page, "flows-list")

    page.get_by_test_id("namespace-tree").get_by_text("sales", exact=True).click()
    expect(page).to_have_url(re.compile(r"namespace=ui\.tree\.sales"))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("[data-flow='ui.tree.sales.orders']")).to_be_visible()

    page.get_by_test_id("namespace-tree").get_by_text("All namespaces").click()
    page.get_by_placeholder("Search flows").fill("payroll")
    page.get_by_role("button", name="Search").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("[data-flow='ui.tree.hr.payroll']")).to_be_visible()


def test_the_editor_shows_problems_while_typing(page: Page) -> None:
    page.goto("/ui/flows/new")
    replace_source(page, INVALID)
    # no save: the server's validation arrives on its own, at the line
    expect(page.locator(".cm-line", has=page.locator(".cm-lintRange-error"))).to_have_text(
        "    levle: INFO"
    )
    expect(page.get_by_test_id("validation")).to_have_text("1 problem")
    expect(page.get_by_role("alert")).to_have_count(0)
    page.locator(".cm-lint-marker-error").hover()
    expect(page.locator(".cm-tooltip-lint")).to_contain_text("tasks[0].levle: unknown property")
    screenshot(page, "flow-editor-live-validation")

    replace_source(page, VALID)
    expect(page.locator(".cm-lint-marker-error")).to_have_count(0)
    expect(page.get_by_test_id("validation")).to_have_text("")
