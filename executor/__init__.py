"""Lanner executor component: orchestrates executions (pure core, embedded and Faust shells)."""

from .core import CoreConfig as CoreConfig
from .core import StepResult as StepResult
from .core import step as step
from .embedded import EmbeddedExecutor as EmbeddedExecutor
from .state import ExecutorState as ExecutorState

__all__ = ["CoreConfig", "EmbeddedExecutor", "ExecutorState", "StepResult", "step"]
