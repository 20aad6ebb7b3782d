"""Tasks the executor applies itself: Labels (changes the execution) and Resume."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from common.plugins.base import ExecutorTask


class Labels(ExecutorTask):
    """Add or replace labels of the current execution (a map, a list, or JSON rendering to one)."""

    TYPE: ClassVar[str] = "lanner.core.execution.Labels"
    labels: Any


class Resume(ExecutorTask):
    """Resume a paused execution (by default the current one's parent is not assumed)."""

    TYPE: ClassVar[str] = "lanner.core.execution.Resume"
    execution_id: str | None = Field(default=None, alias="executionId")
    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    inputs: dict[str, Any] | None = None
