"""The management port of a component: ``/health/live``, ``/health/ready`` and ``/metrics``.

Every ``lanner server <component>`` serves it on ``metrics_port`` (``LANNER_METRICS_PORT``),
``lanner server local`` when given ``--management-port`` or ``metrics_port``; without
authentication, so that Kubernetes probes and Prometheus reach it whatever the API does.
It runs on a thread of its own: a component busy on its main loop still answers its probes.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger("lanner.management")

# a readiness check: None when ready, else why not (shown in the /health/ready answer)
ReadinessCheck = Callable[[], str | None]


class ManagementServer:
    """``start()`` binds (``port`` 0: a free one, then read ``port``), ``stop()`` closes."""

    def __init__(
        self,
        component: str,
        port: int,
        host: str = "0.0.0.0",
        ready: ReadinessCheck | None = None,
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.component = component
        self.host = host
        self.port = port
        self.ready = ready or (lambda: None)
        # the exposition (default: the process-wide registry)
        self.metrics = metrics or (lambda: generate_latest(REGISTRY))
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, owner.metrics(), CONTENT_TYPE_LATEST)
                elif path == "/health/live":
                    self._json(200, {"status": "UP", "component": owner.component})
                elif path == "/health/ready":
                    try:
                        reason = owner.ready()
                    except Exception as exc:  # noqa: BLE001 - a failing check means not ready
                        reason = f"{type(exc).__name__}: {exc}"
                    body = {"status": "UP" if reason is None else "DOWN"}
                    body["component"] = owner.component
                    if reason is not None:
                        body["reason"] = reason
                    self._json(200 if reason is None else 503, body)
                else:
                    self._json(
                        404,
                        {
                            "message": f"no such path {path}: try /health/live, "
                            "/health/ready or /metrics"
                        },
                    )

            def _json(self, status: int, body: dict[str, str]) -> None:
                self._answer(status, json.dumps(body).encode(), "application/json")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # probes every few seconds would drown the component's own log

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, name="lanner-management", daemon=True
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
