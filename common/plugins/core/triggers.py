"""Core plugins: triggers."""

from __future__ import annotations

PLUGINS: list[type] = []
