"""The CLI against a real server on temporary SQLite backends."""

from __future__ import annotations

from tests.webserver.conftest import app, backends, server

__all__ = ["app", "backends", "server"]
