"""Attaches every command group to the root ``lanner`` group."""

from __future__ import annotations

import importlib

import click

# module name in this package -> attribute holding a click command or group
_COMMANDS = {
    "server": "server",
    "flow": "flow",
    "execution": "execution",
    "kafka": "kafka",
    "secret": "secret",
    "token": "token",
}


def register(root: click.Group) -> None:
    for module_name, attr in _COMMANDS.items():
        try:
            module = importlib.import_module(f"common.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"common.cli.{module_name}":
                continue  # command group not written yet
            raise
        root.add_command(getattr(module, attr))
