"""Stand-ins for core plugins that may not exist yet, so API and CLI tests can parse flows.

``use_stub_plugins(monkeypatch)`` puts a registry in place holding every real plugin plus a
stub for each of ``lanner.core.log.Log``, ``lanner.core.debug.Return`` and
``lanner.core.trigger.Webhook`` that is missing. Real plugins always win.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from common.plugins import registry as registry_module
from common.plugins.base import FlowModel, RunnableTask, Trigger


class _StubLog(RunnableTask):
    TYPE: ClassVar[str] = "lanner.core.log.Log"
    message: Any
    level: str | None = None


class _StubReturn(RunnableTask):
    TYPE: ClassVar[str] = "lanner.core.debug.Return"
    format: Any = None


class _StubWebhook(Trigger):
    TYPE: ClassVar[str] = "lanner.core.trigger.Webhook"
    key: str
    inputs: Any = None


_STUBS: list[type[FlowModel]] = [_StubLog, _StubReturn, _StubWebhook]


def use_stub_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry_module.registry()
    classes = list(real.by_type.values())
    classes += [stub for stub in _STUBS if stub.TYPE not in real.by_type]
    merged = registry_module.Registry(classes)
    monkeypatch.setattr(registry_module, "registry", lambda: merged)
