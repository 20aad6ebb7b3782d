"""Prometheus metrics of the HTTP API, as a small ASGI middleware."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from webserver._live import LiveFeed


class HttpMetrics:
    """The webserver's metrics.

    By default in a registry of their own, so several apps can coexist in one process (tests);
    ``lanner server webserver`` passes the process-wide ``REGISTRY``, which the management port
    serves, so they are on ``LANNER_METRICS_PORT`` too.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lanner_webserver_http_requests",
            "HTTP requests served, by method, route template and status.",
            ["method", "path", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lanner_webserver_http_request_duration_seconds",
            "Time to the response headers, by method and route template.",
            ["method", "path"],
            registry=self.registry,
        )

        self.live_consumers = Gauge(
            "lanner_webserver_live_consumers",
            "Queue subscriptions open for live views, by topic: one per process, whatever the "
            "number of open streams.",
            ["topic"],
            registry=self.registry,
        )
        self.live_streams = Gauge(
            "lanner_webserver_live_streams",
            "Live views (SSE follow streams) open, by topic.",
            ["topic"],
            registry=self.registry,
        )

    def watch(self, feed: LiveFeed) -> None:
        """Expose the consumers and streams of ``feed``."""
        self.live_consumers.labels(feed.topic).set_function(lambda: feed.consumers)
        self.live_streams.labels(feed.topic).set_function(lambda: feed.streams)

    def exposition(self) -> bytes:
        """Our metrics plus the process-wide default registry (other components' metrics)."""
        if self.registry is REGISTRY:
            return generate_latest(REGISTRY)
        return generate_latest(REGISTRY) + generate_latest(self.registry)


class MetricsMiddleware:
    """Counts requests by route template (bounded cardinality), not by concrete path.

    Routers are mounted under ``api_prefix`` and ``api_prefix/{tenant}``; a matched route only
    knows its path inside its router, so the prefix is put back from the request.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, api_prefix: str = "/api/v1") -> None:
        self.app = app
        self.metrics = metrics
        self.api_prefix = api_prefix

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if not path:
            return "unmatched"
        request_path = str(scope.get("path", ""))
        if path.startswith(self.api_prefix) or not request_path.startswith(self.api_prefix):
            return str(path)
        if "tenant" in (scope.get("path_params") or {}):
            return f"{self.api_prefix}/{{tenant}}{path}"
        return f"{self.api_prefix}{path}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        observed = False

        def observe() -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            path = self._template(scope)
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - start)

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                observe()
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            observe()
