"""Core plugins: sleep."""

from __future__ import annotations

PLUGINS: list[type] = []
