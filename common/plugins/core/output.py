"""Core plugins: output (``lanner.core.output.OutputValues``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from common.plugins.base import RunContext, RunnableTask


class OutputValues(RunnableTask):
    """Outputs ``{"values": ...}``: the ``values`` map rendered recursively."""

    TYPE: ClassVar[str] = "lanner.core.output.OutputValues"
    values: dict[str, Any] = Field(default_factory=dict)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        return {"values": ctx.render(self.values)}


PLUGINS: list[type] = [OutputValues]
