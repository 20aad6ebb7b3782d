"""Core plugins: sleep (``lanner.core.flow.Sleep``)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from common.plugins.base import RunContext, RunnableTask
from common.plugins.dynamic import DynamicDuration, resolve


class Sleep(RunnableTask):
    """Waits ``duration`` (ISO-8601); a kill order wakes it at once."""

    TYPE: ClassVar[str] = "lanner.core.flow.Sleep"
    duration: DynamicDuration

    def run(self, ctx: RunContext) -> None:
        delta: timedelta = resolve(self.duration, ctx.render_typed)
        ctx.wait_killed(max(delta.total_seconds(), 0.0))
        return None


PLUGINS: list[type] = [Sleep]
