"""Core plugins: execution."""

from __future__ import annotations

PLUGINS: list[type] = []
