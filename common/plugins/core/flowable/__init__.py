"""Flowable core tasks, resolved by the executor."""

from __future__ import annotations

PLUGINS: list[type] = []
