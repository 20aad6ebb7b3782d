"""The built UI under /ui/: files as they are, any other /ui/ path the SPA's index.html."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from webserver.ui_static import mount_ui


def _client(root: Path) -> TestClient:
    app = FastAPI()
    mount_ui(app, root)
    return TestClient(app)


def _built(tmp_path: Path) -> Path:
    root = tmp_path / "ui"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<div id=app></div>")
    (root / "assets" / "index-abc.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("outside the UI")
    return root


def test_deep_links_get_the_page_and_assets_are_served(tmp_path: Path) -> None:
    client = _client(_built(tmp_path))
    for path in ("/ui/", "/ui", "/ui/flows/edit/company.team/hello", "/ui/executions/a/b/c/logs"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.text == "<div id=app></div>"
    asset = client.get("/ui/assets/index-abc.js")
    assert asset.text == "console.log(1)"
    assert "immutable" in asset.headers["cache-control"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"


def test_a_missing_asset_is_a_404_and_nothing_outside_is_served(tmp_path: Path) -> None:
    client = _client(_built(tmp_path))
    assert client.get("/ui/assets/gone-123.js").status_code == 404
    response = client.get("/ui/..%2fsecret.txt")
    assert "outside the UI" not in response.text


def test_an_unbuilt_ui_says_how_to_build_it(tmp_path: Path) -> None:
    response = _client(tmp_path / "nothing").get("/ui/flows")
    assert response.status_code == 404
    assert "make ui" in response.json()["message"]
