"""The web UI in Debian's chromium (Playwright) against a real ``lanner server local``.

The UI must be built (``make ui``) and ``/usr/bin/chromium`` installed (``make test`` does both);
without either the suite fails loudly. Screenshots at 1440x900 go to ``build/ui-screenshots``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from tests.bench._server import LocalServer
from webserver.ui_static import UI_DIR

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# generous: two cores shared with other suites; every wait is on a page condition
WAIT_MS = 30_000


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    assert (UI_DIR / "index.html").is_file(), f"the web UI is not built in {UI_DIR}: run `make ui`"
    server = LocalServer(tmp_path_factory.mktemp("ui-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def api(ui_server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui_server.url + "/api/v1", timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `apt-get install chromium` (make test does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, ui_server: LocalServer) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, base_url=ui_server.url)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    expect.set_options(timeout=WAIT_MS)
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def create_flow(api: httpx.Client, source: str) -> dict:
    response = api.post("/flows", content=source, headers={"Content-Type": "application/x-yaml"})
    assert response.status_code == 200, response.text
    return response.json()


def run_flow(
    api: httpx.Client, namespace: str, flow_id: str, labels: tuple[str, ...] = (), **inputs: str
) -> dict:
    params = {"wait": "true", "labels": list(labels)}
    response = api.post(f"/executions/{namespace}/{flow_id}", params=params, data=inputs)
    assert response.status_code == 200, response.text
    return response.json()
