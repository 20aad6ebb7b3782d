"""Core plugins: log."""

from __future__ import annotations

PLUGINS: list[type] = []
