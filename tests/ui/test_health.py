"""The repository-down banner, on a server of its own whose repository really fails."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.bench._server import LocalServer
from tests.ui.conftest import screenshot


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalServer]:
    server = LocalServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _rename(server: LocalServer, old: str, new: str) -> None:
    # another process breaking the repository for real: the table the API reads goes away
    conn = sqlite3.connect(server.data_dir / "data" / "lanner.db", timeout=30)
    try:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
        conn.commit()
    finally:
        conn.close()


def test_a_banner_says_the_repository_is_down_then_goes_away(
    page: Page, own_server: LocalServer
) -> None:
    page.goto(own_server.url + "/ui/executions")
    expect(page.get_by_test_id("total")).to_have_text("0 executions")
    expect(page.get_by_test_id("repository-down")).to_have_count(0)

    _rename(own_server, "repo_executions", "repo_executions_away")
    try:
        page.get_by_role("button", name="Refresh").click()  # a failing call checks at once
        banner = page.get_by_test_id("repository-down")
        expect(banner).to_contain_text("The repository is unavailable")
        expect(banner).to_contain_text("repo_executions")  # the reason the server gave
        expect(banner).to_contain_text("Executions keep running")
        expect(
            page.get_by_role("alert").filter(has_text="SQLite repository error")
        ).not_to_have_count(0)
        screenshot(page, "repository-down")
    finally:
        _rename(own_server, "repo_executions_away", "repo_executions")
    expect(page.get_by_test_id("repository-down")).to_have_count(0)  # the next check clears it
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_test_id("total")).to_have_text("0 executions")
