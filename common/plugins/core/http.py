"""Core plugins: http."""

from __future__ import annotations

PLUGINS: list[type] = []
