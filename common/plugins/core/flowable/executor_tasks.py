"""Tasks the executor applies itself: Labels (changes the execution), Resume and Exit."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from common.plugins.base import ExecutorTask

EXIT_STATES = ("SUCCESS", "WARNING", "KILLED", "FAILED", "CANCELED")


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


class Exit(ExecutorTask):
    """End the execution in ``state`` (Kestra's ``io.kestra.plugin.core.execution.Exit``).

    SUCCESS, WARNING, FAILED, CANCELED: the Exit task run and its parents take that state and
    so does the execution; nothing else is started (task runs already on a worker are not
    stopped, their results are ignored). KILLED: the execution is killed (running tasks too).
    """

    TYPE: ClassVar[str] = "lanner.core.execution.Exit"
    state: str = "SUCCESS"

    @field_validator("state")
    @classmethod
    def _known_state(cls, value: str) -> str:
        if "{{" not in value and value not in EXIT_STATES:
            known = ", ".join(EXIT_STATES)
            raise ValueError(f"must be one of {known} (or a template), not '{value}'")
        return value
