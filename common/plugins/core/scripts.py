"""Core plugins: scripts."""

from __future__ import annotations

PLUGINS: list[type] = []
