"""The login page (issue 13): with authentication on, the UI's shell loads, the API answers it
401 and the login page shows; a wrong password says so, the right one opens the app, whose
calls, live views and downloads then go with the session cookie."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import Page, expect

from tests.bench._server import LocalServer
from tests.ui.conftest import screenshot


class _SecuredServer(LocalServer):
    def __init__(self, data_dir: Path, config: Path) -> None:
        super().__init__(data_dir)
        self.config = config

    def argv(self) -> list[str]:
        return [*super().argv(), "--config", str(self.config)]


@pytest.fixture
def secured_server(tmp_path: Path) -> Iterator[LocalServer]:
    config = tmp_path / "lanner.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "auth": {
                    "enabled": True,
                    "token_secret": "ui-test-secret-0123456789abcdef0123456789",
                    "users": [{"username": "ada", "password": "lovelace", "role": "admin"}],
                }
            }
        )
    )
    server = _SecuredServer(tmp_path, config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_login_page_shows_without_credentials_and_logs_in(
    page: Page, secured_server: LocalServer
) -> None:
    assert httpx.get(secured_server.url + "/api/v1/flows/search").status_code == 401
    for open_path in ("/health/live", "/health/ready"):  # probes need no user
        assert httpx.get(secured_server.url + open_path).status_code == 200, open_path
    # the API port's metrics do (the management port serves them open)
    assert httpx.get(secured_server.url + "/metrics").status_code == 401
    page.goto(secured_server.url + "/ui/flows")
    form = page.get_by_test_id("login-form")
    expect(form).to_be_visible()
    screenshot(page, "login")
    form.locator("input[name=username]").fill("ada")
    form.locator("input[name=password]").fill("wrong")
    form.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("Wrong username or password")
    form.locator("input[name=password]").fill("lovelace")
    form.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("session")).to_contain_text("ada (admin)")
    expect(page.get_by_role("heading", name="Flows")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()
