"""Lanner's core plugins, registered through the ``lanner.plugins`` entry point."""

from __future__ import annotations

from importlib import import_module

# Each module defines ``PLUGINS``: the classes it contributes.
_MODULES = (
    "flowable",
    "triggers",
    "toggle",
    "conditions",
    "log",
    "debug",
    "output",
    "execution",
    "sleep",
    "http",
    "storage",
    "scripts",
    "kv",
    "namespace",
    "history",
)

PLUGINS: list[type] = []
for _name in _MODULES:
    PLUGINS.extend(import_module(f"{__name__}.{_name}").PLUGINS)
