"""Request dependencies: the backends of the app and the tenant of the request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request

from common.backends import Backends
from webserver._live import LiveFeed


def get_backends(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


def get_tenant(request: Request) -> str:
    """``/api/v1/{tenant}/...`` names the tenant; ``/api/v1/...`` is the default tenant."""
    tenant = request.path_params.get("tenant")
    if tenant:
        return str(tenant)
    return get_backends(request).settings.tenant or "main"


BackendsDep = Annotated[Backends, Depends(get_backends)]
TenantDep = Annotated[str, Depends(get_tenant)]


def live_feeds(app: FastAPI) -> dict[str, LiveFeed]:
    """The app's live feeds by topic (``executions``, ``logs``): one consumer each, started on
    first use or by whoever serves the app, shared by every follow stream."""
    feeds: dict[str, LiveFeed] = app.state.live_feeds
    return feeds
