"""Subflow: start an execution of another flow, and (by default) wait for it."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from common.plugins.base import ExecutableTask
from common.plugins.dynamic import DynamicBool, DynamicMap


class Subflow(ExecutableTask):
    TYPE: ClassVar[str] = "lanner.core.flow.Subflow"
    namespace: str
    flow_id: str = Field(alias="flowId")
    revision: int | None = None
    inputs: DynamicMap = Field(default_factory=dict)
    labels: Any = None
    wait: DynamicBool = True
    transmit_failed: DynamicBool = Field(default=True, alias="transmitFailed")
    inherit_labels: DynamicBool = Field(default=False, alias="inheritLabels")
    # deprecated in Kestra but still used: rendered against the child execution when it ends
    outputs: dict[str, Any] | None = None
    schedule_date: str | None = Field(default=None, alias="scheduleDate")
    restart_behavior: str | None = Field(default=None, alias="restartBehavior")
