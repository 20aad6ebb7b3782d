"""``lanner secret key``: print a new encryption key for SECRET inputs."""

from __future__ import annotations

import click


@click.group()
def secret() -> None:
    """Encryption of SECRET inputs."""


@secret.command()
def key() -> None:
    """Print a new key for LANNER_ENCRYPTION_KEY (the same on the webserver and every worker)."""
    from common.secrets import new_key

    click.echo(new_key())
