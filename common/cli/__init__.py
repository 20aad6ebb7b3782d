"""The ``lanner`` command line. Each command group lives in its own module of this package."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="lanner")
def cli() -> None:
    """Lanner: a workflow orchestrator for YAML flows."""


def _register() -> None:
    # Imported here so `lanner --help` stays fast and a missing optional backend (Kafka) only
    # breaks the commands that need it.
    from . import commands

    commands.register(cli)


def main() -> None:
    _register()
    cli()
