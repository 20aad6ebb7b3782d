"""Deep pagination: past the numbered pages' window, the list follows the API's cursor."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from common.repository.base import MAX_RESULT_WINDOW
from tests.bench._server import LocalServer
from tests.ui.conftest import screenshot
from tests.ui.seeding import seed_executions

PAGE_SIZE = 25  # the list's
COUNT = MAX_RESULT_WINDOW + 30


@pytest.fixture(scope="module")
def deep_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalServer, list[str]]]:
    data_dir: Path = tmp_path_factory.mktemp("deep-server")
    ids = seed_executions(data_dir, COUNT)
    server = LocalServer(data_dir)
    server.start()
    try:
        yield server, ids
    finally:
        server.stop()


def expect_rows(page: Page, expected: list[str]) -> None:
    """The table shows exactly ``expected``, in order (waiting for the page to load)."""
    rows = page.get_by_test_id("executions-table").locator("tbody tr[data-execution]")
    expect(rows).to_have_count(len(expected))
    expect(rows.first).to_have_attribute("data-execution", expected[0])
    expect(rows.last).to_have_attribute("data-execution", expected[-1])
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.execution)") == expected


def test_pages_past_the_window_follow_the_cursor(
    page: Page, deep_server: tuple[LocalServer, list[str]]
) -> None:
    server, ids = deep_server
    last_numbered = MAX_RESULT_WINDOW // PAGE_SIZE
    page.goto(f"{server.url}/ui/executions?page={last_numbered}")
    expect(page.get_by_test_id("total")).to_have_text(f"{COUNT} executions")
    expect(page.get_by_test_id("page-number")).to_have_text(f"Page {last_numbered} / 402")
    deepest_numbered = ids[MAX_RESULT_WINDOW - PAGE_SIZE : MAX_RESULT_WINDOW]
    expect_rows(page, deepest_numbered)

    page.get_by_role("button", name="Next").click()
    expect(page).to_have_url(re.compile(r"after="))
    expect(page.get_by_test_id("page-number")).to_have_text("Page 401 / 402")
    expect_rows(page, ids[MAX_RESULT_WINDOW : MAX_RESULT_WINDOW + PAGE_SIZE])
    screenshot(page, "executions-deep-page")

    page.get_by_role("button", name="Next").click()
    expect(page.get_by_test_id("page-number")).to_have_text("Page 402 / 402")
    expect_rows(page, ids[MAX_RESULT_WINDOW + PAGE_SIZE :])  # the last 5
    expect(page.get_by_role("button", name="Next")).to_be_disabled()

    # back through the cursors walked, then to the numbered pages
    page.get_by_role("button", name="Previous").click()
    expect(page.get_by_test_id("page-number")).to_have_text("Page 401 / 402")
    expect_rows(page, ids[MAX_RESULT_WINDOW : MAX_RESULT_WINDOW + PAGE_SIZE])
    page.get_by_role("button", name="Previous").click()
    expect(page.get_by_test_id("page-number")).to_have_text(f"Page {last_numbered} / 402")
    expect(page).not_to_have_url(re.compile(r"after="))
    expect_rows(page, deepest_numbered)
