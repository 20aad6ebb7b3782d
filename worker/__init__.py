"""Lanner worker component: runs runnable tasks, reports their results, heartbeats."""

from __future__ import annotations

from ._pool import Worker as Worker
from ._pool import WorkerConfig as WorkerConfig

__all__ = ["Worker", "WorkerConfig"]
