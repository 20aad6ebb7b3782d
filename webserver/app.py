"""The FastAPI application: Kestra's REST API under ``/api/v1`` and ``/api/v1/{tenant}``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from common.auth import TokenStore
from common.backends import Backends
from common.queue.base import EXECUTIONS, LOGS
from common.settings import Settings
from webserver._live import LiveFeed
from webserver.auth import (
    AUTHORIZE,
    Authenticator,
    AuthMiddleware,
    authenticated,
    session_router,
    tokens_router,
)
from webserver.deps import live_feeds
from webserver.errors import install_error_handlers
from webserver.metrics import HttpMetrics, MetricsMiddleware
from webserver.routers import (
    execution_actions,
    execution_bulk,
    executions,
    files,
    flows,
    graph,
    kv,
    logs,
    namespace_files,
    namespaces,
    plugins,
    trigger_changes,
    triggers,
    workers,
)
from webserver.ui_static import mount_ui

API_PREFIX = "/api/v1"
_ROUTERS = (
    flows.router,
    graph.router,
    # before `executions`: `/executions/by-ids` and `/executions/kill/by-ids` would be taken
    # for an execution id and for `/executions/{namespace}/{flowId}`
    execution_bulk.router,
    execution_actions.router,
    executions.router,
    files.router,
    logs.router,
    triggers.router,
    trigger_changes.router,
    workers.router,
    kv.router,
    namespace_files.router,
    namespaces.router,
    plugins.router,
)


def api_routers() -> tuple[APIRouter, ...]:
    """Every router of the REST API, as the compatibility table (``webserver.compat``) lists
    them."""
    return (*_ROUTERS, tokens_router, session_router)


def _down(request: Request, reason: str) -> JSONResponse:
    if not authenticated(request):  # auth on, anonymous: the status without the details
        reason = "not ready (log in to see why)"
    return JSONResponse({"status": "DOWN", "message": reason}, status_code=503)


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live", summary="The process answers")
    async def live() -> dict[str, str]:
        return {"status": "UP"}

    @router.get("/health/ready", summary="The repository (and the queue) answer")
    async def ready(request: Request) -> Any:
        readiness = getattr(request.app.state, "readiness", None)
        if readiness is not None:  # set by `lanner server webserver`: the management port's
            reason = await anyio.to_thread.run_sync(readiness)
            if reason is not None:
                return _down(request, reason)
            return {"status": "UP"}
        backends: Backends = request.app.state.backends
        try:
            # a key lookup: it fails when the repository does, and costs nothing when it is up
            # (every open UI polls it; a search would count every execution)
            await anyio.to_thread.run_sync(
                backends.repositories.executions.get, backends.settings.tenant or "main", "-ready-"
            )
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return _down(request, str(exc))
        return {"status": "UP"}

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        exposition: HttpMetrics = request.app.state.http_metrics
        return Response(exposition.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def stop_live_feeds(app: FastAPI) -> None:
    for feed in live_feeds(app).values():
        feed.stop()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(stop_live_feeds, app)


def create_app(
    settings: Settings,
    backends: Backends,
    *,
    http_metrics: HttpMetrics | None = None,
    token_store: TokenStore | None = None,
) -> FastAPI:
    """The webserver on the given backends (reads: repository; writes: queue).

    ``http_metrics``: where the request and live-view metrics go (default: a registry of the
    app's own). ``token_store``: where API tokens are kept when ``auth.enabled`` (default: the
    embedded database's table; on Kafka the caller passes the topic's store).
    """
    app = FastAPI(
        title="Lanner",
        version="0.1.0",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.backends = backends
    app.state.http_metrics = http_metrics or HttpMetrics()
    app.state.live_feeds = {topic: LiveFeed(backends.queue, topic) for topic in (EXECUTIONS, LOGS)}
    for feed in app.state.live_feeds.values():
        app.state.http_metrics.watch(feed)
    install_error_handlers(app)
    routers = (*_ROUTERS, tokens_router)
    for router in routers:
        app.include_router(router, prefix=API_PREFIX, dependencies=AUTHORIZE)
    for router in routers:  # tenant-aware copies, hidden from the docs to keep them short
        app.include_router(
            router, prefix=API_PREFIX + "/{tenant}", include_in_schema=False, dependencies=AUTHORIZE
        )
    app.include_router(session_router, prefix=API_PREFIX)
    app.include_router(_health_router())
    mount_ui(app)
    if settings.auth.enabled:
        app.state.token_store = token_store or _embedded_token_store(backends)
        app.state.authenticator = Authenticator(settings.auth, app.state.token_store)
        app.add_middleware(AuthMiddleware, authenticator=app.state.authenticator)
    app.add_middleware(MetricsMiddleware, metrics=app.state.http_metrics)
    return app


def _embedded_token_store(backends: Backends) -> TokenStore:
    from common.auth import SqliteTokenStore

    db = getattr(backends.queue, "db", None)
    if backends.settings.queue != "sqlite" or db is None:
        raise ValueError(
            "auth.enabled on Kafka: the webserver needs the `tokens` topic's store "
            "(lanner server webserver passes it)"
        )
    return SqliteTokenStore(db)
