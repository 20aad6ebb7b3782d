"""Pause: the task run waits (PAUSED) for a resume through the API, a delay or a timeout."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field

from common.models.execution import TaskRun
from common.models.flow import Input
from common.plugins.base import ResolveContext, ResolvedTask, parse_duration

from ._common import WithChildren


class Pause(WithChildren):
    TYPE: ClassVar[str] = "lanner.core.flow.Pause"
    # `delay` is Kestra's older name of `pauseDuration`: resume by itself after it
    pause_duration: str | None = Field(
        default=None, validation_alias=AliasChoices("pauseDuration", "delay")
    )
    timeout: str | None = None
    behavior: Literal["RESUME", "WARN", "FAIL", "CANCEL"] | None = None
    on_resume: list[Input] = Field(default_factory=list, alias="onResume")

    def resume_after(self) -> timedelta | None:
        return parse_duration(self.pause_duration)

    def fail_after(self) -> timedelta | None:
        return parse_duration(self.timeout)

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return self._sequential(ctx, parent)
