"""The CLI against a real server on temporary SQLite backends."""

from __future__ import annotations

from tests.webserver.conftest import _plugins, app, backends, server

__all__ = ["_plugins", "app", "backends", "server"]
