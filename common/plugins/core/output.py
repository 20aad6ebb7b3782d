"""Core plugins: output."""

from __future__ import annotations

PLUGINS: list[type] = []
