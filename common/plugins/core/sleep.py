"""Core plugins: sleep (``lanner.core.flow.Sleep``)."""

from __future__ import annotations

from typing import ClassVar

from common.plugins.base import RunContext, RunnableTask, parse_duration


class Sleep(RunnableTask):
    """Waits ``duration`` (ISO-8601); a kill order wakes it at once."""

    TYPE: ClassVar[str] = "lanner.core.flow.Sleep"
    duration: str

    def run(self, ctx: RunContext) -> None:
        delta = parse_duration(str(ctx.render(self.duration)))
        assert delta is not None
        ctx.wait_killed(max(delta.total_seconds(), 0.0))
        return None


PLUGINS: list[type] = [Sleep]
