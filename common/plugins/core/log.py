"""Core plugins: log (``lanner.core.log.Log``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import field_validator

from common.plugins.base import RunContext, RunnableTask

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


def normalize_level(value: Any) -> str:
    """Kestra's (slf4j) level names; ``WARNING`` is accepted for ``WARN``."""
    text = str(value).strip().upper()
    if text == "WARNING":
        text = "WARN"
    if text not in LEVELS:
        raise ValueError(f"unknown log level '{value}' (one of {', '.join(LEVELS)})")
    return text


class Log(RunnableTask):
    """Logs a message (or each message of a list) at ``level``."""

    TYPE: ClassVar[str] = "lanner.core.log.Log"
    message: str | list[str]
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        return value if "{{" in value else normalize_level(value)

    def run(self, ctx: RunContext) -> None:
        level = normalize_level(ctx.render(self.level))
        messages = self.message if isinstance(self.message, list) else [self.message]
        for message in messages:
            ctx.log(level, str(ctx.render(message)))
        return None


PLUGINS: list[type] = [Log]
