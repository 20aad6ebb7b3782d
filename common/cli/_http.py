"""Talking to a Lanner server from the CLI: one client, errors as clear messages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import httpx

DEFAULT_SERVER = "http://127.0.0.1:8080"

server_option = click.option(
    "--server",
    default=lambda: os.environ.get("LANNER_SERVER_URL", DEFAULT_SERVER),
    show_default=DEFAULT_SERVER,
    help="URL of the Lanner server (env LANNER_SERVER_URL).",
)
tenant_option = click.option("--tenant", default=None, help="Tenant (default: the server's).")


def api_prefix(tenant: str | None) -> str:
    return f"/api/v1/{tenant}" if tenant else "/api/v1"


def _credentials() -> dict[str, str]:
    """``LANNER_API_TOKEN`` (``lanner token create``) as a bearer token, when set."""
    token = os.environ.get("LANNER_API_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


@contextmanager
def api_client(server: str, timeout: float = 30.0) -> Iterator[httpx.Client]:
    """An HTTP client on ``server`` (with ``LANNER_API_TOKEN`` when the server needs one);
    transport failures become a ``ClickException``."""
    try:
        with httpx.Client(
            base_url=server.rstrip("/"), timeout=timeout, headers=_credentials()
        ) as client:
            yield client
    except httpx.ConnectError:
        raise click.ClickException(
            f"cannot reach the Lanner server at {server}: is `lanner server local` running?"
        ) from None
    except httpx.TimeoutException:
        raise click.ClickException(
            f"the Lanner server at {server} did not answer in time"
        ) from None
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"request to the Lanner server at {server} failed: {exc}"
        ) from None


def describe_error(response: httpx.Response) -> str:
    """The API's error body (message and located problems) as text."""
    try:
        body: Any = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text.strip()[:500]}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}: {body}"
    lines = [f"HTTP {response.status_code}: {body.get('message', '')}".rstrip()]
    for error in body.get("errors") or []:
        where = f" (line {error['line']})" if error.get("line") is not None else ""
        lines.append(f"  {error.get('path') or '<root>'}{where}: {error.get('message')}")
    return "\n".join(lines)
