"""``lanner token``: API tokens of a deployment, signed with ``auth.token_secret``.

Tokens are created where the server keeps them (the embedded database, or the ``tokens`` topic
on Kafka), so the command needs the server's configuration file, not a running server.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from common.auth.config import ROLES

if TYPE_CHECKING:
    from common.settings import Settings

_config_option = click.option(
    "--config",
    "config_file",
    envvar="LANNER_CONFIG",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The server's YAML configuration file (auth.token_secret, data dir or Kafka).",
)


def _settings(config_file: Path | None) -> tuple[Settings, str]:
    from common.settings import Settings

    try:
        settings = Settings.load(config_file)
        secret = settings.auth.secret()
    except ValueError as exc:
        raise click.UsageError(f"configuration: {exc}") from exc
    if settings.queue == "kafka":
        from common.cli.component import ensure_kafka_topics

        ensure_kafka_topics(settings)  # the `tokens` topic, when no server created it yet
    return settings, secret


@click.group()
def token() -> None:
    """API tokens (bound to a tenant and a role, expiring, revocable)."""


@token.command()
@_config_option
@click.option("--tenant", default=None, help="Tenant of the token (default: the server's).")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option("--name", required=True, help="What the token is for (shown in listings).")
@click.option("--days", type=float, default=None, help="Lifetime (default auth.token_days).")
def create(
    config_file: Path | None, tenant: str | None, role: str, name: str, days: float | None
) -> None:
    """Create a token; the token itself is the last word printed (shown once)."""
    from common.auth.store import open_token_store
    from common.auth.tokens import new_token, utcnow

    settings, secret = _settings(config_file)
    record, signed = new_token(
        secret,
        name=name,
        tenant=tenant or settings.tenant,
        role=role,
        lifetime=timedelta(days=days or settings.auth.token_days),
        now=utcnow(),
    )
    with open_token_store(settings) as store:
        store.add(record)
    click.echo(
        f"token {record.id} '{record.name}' (tenant {record.tenant}, role {record.role}, "
        f"expires {record.expires.isoformat()}): {signed}"
    )


@token.command()
@_config_option
@click.argument("token_id")
def revoke(config_file: Path | None, token_id: str) -> None:
    """Revoke the token TOKEN_ID: refused from the next request on."""
    from common.auth.store import open_token_store

    settings, _ = _settings(config_file)
    with open_token_store(settings) as store:
        record = store.revoke(token_id)
    if record is None:
        raise click.ClickException(f"no token {token_id}")
    click.echo(f"token {token_id} revoked")


@token.command("list")
@_config_option
@click.option("--tenant", default=None, help="Only this tenant's tokens.")
def list_tokens(config_file: Path | None, tenant: str | None) -> None:
    """Every token (id, name, tenant, role, expiry, revoked); never the tokens themselves."""
    from common.auth.store import open_token_store

    settings, _ = _settings(config_file)
    with open_token_store(settings) as store:
        records = store.list(tenant)
    for r in records:
        state = "revoked" if r.revoked else f"expires {r.expires.isoformat()}"
        click.echo(f"{r.id}\t{r.name}\t{r.tenant}\t{r.role}\t{state}")


@token.command("hash-password")
@click.password_option()
def hash_password(password: str) -> None:
    """Print the argon2 hash of a password, for auth.users[].password."""
    from common.auth.passwords import hash_password as hashed

    click.echo(hashed(password))
