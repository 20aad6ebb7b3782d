"""Core plugins: storage."""

from __future__ import annotations

PLUGINS: list[type] = []
