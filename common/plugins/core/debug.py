"""Core plugins: debug (``lanner.core.debug.Return``, deprecated ``Echo``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import field_validator

from common.plugins.base import RunContext, RunnableTask

from .log import normalize_level


class Return(RunnableTask):
    """Renders ``format``; outputs ``{"value": rendered}``."""

    TYPE: ClassVar[str] = "lanner.core.debug.Return"
    format: str | None = None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        value = ctx.render(self.format) if self.format is not None else None
        ctx.log("DEBUG", f"Return: {value}")
        return {"value": value}


class Echo(RunnableTask):
    """Deprecated in Kestra (use Log): logs the rendered ``format`` at ``level``."""

    TYPE: ClassVar[str] = "lanner.core.debug.Echo"
    format: str
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        return value if "{{" in value else normalize_level(value)

    def run(self, ctx: RunContext) -> None:
        ctx.log(normalize_level(ctx.render(self.level)), str(ctx.render(self.format)))
        return None


PLUGINS: list[type] = [Return, Echo]
