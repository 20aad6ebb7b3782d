"""Core plugins: debug."""

from __future__ import annotations

PLUGINS: list[type] = []
