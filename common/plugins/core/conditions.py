"""Core plugins: conditions."""

from __future__ import annotations

PLUGINS: list[type] = []
