"""Core plugins: execution (``lanner.core.execution.Fail``).

``Labels`` and ``Resume`` are applied by the executor, not here.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from common.plugins.base import RunContext, RunnableTask

from ._support import TaskFailed


def _is_true(rendered: object) -> bool:
    try:
        from common.templating import is_true
    except ImportError:  # templating not available: Kestra's truthiness of a rendered string
        text = str(rendered).strip().lower()
        return text not in ("", "false", "0", "null", "none")
    return is_true(str(rendered))


class Fail(RunnableTask):
    """Fails the attempt with ``errorMessage`` (logged at ERROR), unless ``condition`` is false."""

    TYPE: ClassVar[str] = "lanner.core.execution.Fail"
    condition: str | bool | None = None
    error_message: str = Field(default="Task failure", alias="errorMessage")

    def run(self, ctx: RunContext) -> None:
        if self.condition is not None:
            rendered = (
                self.condition if isinstance(self.condition, bool) else ctx.render(self.condition)
            )
            if not (rendered is True or (rendered is not False and _is_true(rendered))):
                return None
        raise TaskFailed(str(ctx.render(self.error_message)))


PLUGINS: list[type] = [Fail]
