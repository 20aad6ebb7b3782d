"""http.Request against a real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common.models.state import State

from .conftest import Harness


class _Handler(BaseHTTPRequestHandler):
    def _reply(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("X-Test", "yes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/missing":
            self._reply(404, b'{"error":"not found"}')
        elif self.path == "/big":
            self._reply(200, b"y" * (2 * 1024 * 1024), "text/plain")
        else:
            self._reply(200, json.dumps({"path": self.path}).encode())

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        payload = {
            "received": self.rfile.read(length).decode(),
            "contentType": self.headers.get("Content-Type"),
            "auth": self.headers.get("X-Auth"),
        }
        self._reply(201, json.dumps(payload).encode())

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_get(running: Harness, server: str) -> None:
    result, _ = running.run(
        {"id": "get", "type": "io.kestra.plugin.core.http.Request", "uri": f"{server}/hello"}
    )
    assert result.state == State.SUCCESS, result.error
    assert result.outputs is not None
    assert result.outputs["code"] == 200
    assert json.loads(result.outputs["body"]) == {"path": "/hello"}
    assert result.outputs["headers"]["x-test"] == ["yes"]
    assert result.outputs["uri"] == f"{server}/hello"


def test_post_with_rendered_body_and_headers(running: Harness, server: str) -> None:
    result, _ = running.run(
        {
            "id": "post",
            "type": "io.kestra.plugin.core.http.Request",
            "uri": f"{server}/items",
            "method": "POST",
            "contentType": "application/json",
            "headers": {"X-Auth": "{{ inputs.token }}"},
            "body": '{"name": "{{ inputs.name }}"}',
        },
        {"inputs": {"token": "t0k", "name": "thing"}},
    )
    assert result.state == State.SUCCESS, result.error
    assert result.outputs is not None and result.outputs["code"] == 201
    echoed = json.loads(result.outputs["body"])
    assert echoed == {
        "received": '{"name": "thing"}',
        "contentType": "application/json",
        "auth": "t0k",
    }


def test_form_data(running: Harness, server: str) -> None:
    result, _ = running.run(
        {
            "id": "form",
            "type": "io.kestra.plugin.core.http.Request",
            "uri": f"{server}/form",
            "method": "POST",
            "formData": {"a": "1", "b": "two"},
        }
    )
    assert result.outputs is not None
    assert json.loads(result.outputs["body"])["received"] == "a=1&b=two"


def test_error_status_fails_unless_allowed(running: Harness, server: str) -> None:
    task = {"id": "miss", "type": "io.kestra.plugin.core.http.Request", "uri": f"{server}/missing"}
    result, logs = running.run(task)
    assert result.state == State.FAILED
    assert result.error == "Failed http request with response code '404'"
    assert result.outputs is not None and result.outputs["code"] == 404
    assert any(e.level == "ERROR" for e in logs)
    allowed, _ = running.run({**task, "options": {"allowFailed": True}})
    assert allowed.state == State.SUCCESS
    assert allowed.outputs is not None and allowed.outputs["code"] == 404


def test_large_body_goes_to_storage(running: Harness, server: str) -> None:
    result, _ = running.run(
        {"id": "big", "type": "io.kestra.plugin.core.http.Request", "uri": f"{server}/big"}
    )
    assert result.state == State.SUCCESS and result.outputs is not None
    body_uri = result.outputs["body"]
    assert body_uri.startswith("lanner://")
    assert running.storage.get(body_uri) == b"y" * (2 * 1024 * 1024)


def test_connection_refused_fails(running: Harness) -> None:
    result, _ = running.run(
        {"id": "down", "type": "io.kestra.plugin.core.http.Request", "uri": "http://127.0.0.1:1/"}
    )
    assert result.state == State.FAILED
    assert result.error and "ConnectError" in result.error


def test_options_and_headers_accept_templates(running: Harness, server: str) -> None:
    variables = {
        "vars": {"codes": "[404]", "follow": "false", "secs": "PT5S"},
        "inputs": {"headers": {"X-Auth": "from-a-map"}},
    }
    result, _ = running.run(
        {
            "id": "miss",
            "type": "io.kestra.plugin.core.http.Request",
            "uri": f"{server}/missing",
            "options": {
                "allowedResponseCodes": "{{ vars.codes }}",
                "followRedirects": "{{ vars.follow }}",
                "timeout": {"connectTimeout": "{{ vars.secs }}"},
                "readTimeout": "{{ vars.secs }}",
            },
        },
        variables,
    )
    assert result.state == State.SUCCESS, result.error
    assert result.outputs is not None and result.outputs["code"] == 404
    posted, _ = running.run(
        {
            "id": "post",
            "type": "io.kestra.plugin.core.http.Request",
            "uri": f"{server}/echo",
            "method": "POST",
            "body": "x",
            "headers": "{{ inputs.headers }}",
        },
        variables,
    )
    assert posted.state == State.SUCCESS, posted.error
    assert posted.outputs is not None and json.loads(posted.outputs["body"])["auth"] == "from-a-map"


def test_invalid_rendered_option_names_the_property(running: Harness, server: str) -> None:
    result, _ = running.run(
        {
            "id": "get",
            "type": "io.kestra.plugin.core.http.Request",
            "uri": f"{server}/hello",
            "options": {"readTimeout": "{{ 'whenever' }}"},
        }
    )
    assert result.state == State.FAILED
    assert result.error is not None and "readTimeout: 'whenever' is not a duration" in result.error
