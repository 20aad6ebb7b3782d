"""Pause: the task run waits (PAUSED) for a resume through the API, a delay or a timeout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from common.models.execution import TaskRun
from common.models.flow import Input
from common.plugins.base import ResolveContext, ResolvedTask
from common.plugins.dynamic import DynamicDuration, resolve

from ._common import WithChildren


class Pause(WithChildren):
    TYPE: ClassVar[str] = "lanner.core.flow.Pause"
    pause_duration: DynamicDuration | None = Field(default=None, alias="pauseDuration")
    # Kestra's older name of `pauseDuration`: resume by itself after it
    delay: DynamicDuration | None = None
    timeout: DynamicDuration | None = None
    behavior: Literal["RESUME", "WARN", "FAIL", "CANCEL"] | None = None
    on_resume: list[Input] = Field(default_factory=list, alias="onResume")

    def resume_after(self, render: Callable[[str], Any]) -> timedelta | None:
        """Raises ``PropertyError`` (or ``TemplateError``) when the template renders wrong."""
        duration = self.pause_duration if self.pause_duration is not None else self.delay
        return resolve(duration, render)  # type: ignore[no-any-return]

    def fail_after(self, render: Callable[[str], Any]) -> timedelta | None:
        return resolve(self.timeout, render)  # type: ignore[no-any-return]

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._sequential(ctx, parent)
