"""``lanner execution run``: start an execution on a server, optionally wait for its end."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from common.cli._http import api_client, api_prefix, describe_error, server_option, tenant_option

TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}
POLL_SECONDS = 0.5


@click.group()
def execution() -> None:
    """Run executions."""


def _split_inputs(values: tuple[str, ...]) -> tuple[dict[str, str], dict[str, Path]]:
    fields: dict[str, str] = {}
    files: dict[str, Path] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"'{value}' is not key=value", param_hint="--input")
        if raw.startswith("@"):
            path = Path(raw[1:])
            if not path.is_file():
                raise click.BadParameter(f"file '{path}' not found", param_hint="--input")
            files[key] = path
        else:
            fields[key] = raw
    return fields, files


@execution.command()
@click.argument("namespace")
@click.argument("flow_id")
@click.option("--input", "inputs", multiple=True, help="key=value, or key=@path to upload a file.")
@click.option("--label", "labels", multiple=True, help="key:value label (repeatable).")
@click.option("--wait", is_flag=True, help="Wait for the end; exit non-zero unless SUCCESS.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait at most.")
@server_option
@tenant_option
def run(
    namespace: str,
    flow_id: str,
    inputs: tuple[str, ...],
    labels: tuple[str, ...],
    wait: bool,
    timeout: float,
    server: str,
    tenant: str | None,
) -> None:
    """Start an execution of NAMESPACE FLOW_ID and print its state and outputs as JSON."""
    for label in labels:
        if ":" not in label:
            raise click.BadParameter(f"'{label}' is not key:value", param_hint="--label")
    fields, paths = _split_inputs(inputs)
    prefix = api_prefix(tenant)
    with api_client(server) as client:
        handles = {key: path.open("rb") for key, path in paths.items()}
        try:
            files: Any = {key: (paths[key].name, handle) for key, handle in handles.items()}
            response = client.post(
                f"{prefix}/executions/{namespace}/{flow_id}",
                data=fields,
                files=files or None,
                params=[("labels", label) for label in labels],
            )
        finally:
            for handle in handles.values():
                handle.close()
        if response.status_code >= 400:
            raise click.ClickException(describe_error(response))
        body = response.json()
        if wait:
            deadline = time.monotonic() + timeout
            while body["state"]["current"] not in TERMINAL:
                if time.monotonic() > deadline:
                    raise click.ClickException(
                        f"execution {body['id']} still {body['state']['current']} after {timeout}s"
                    )
                time.sleep(POLL_SECONDS)
                polled = client.get(f"{prefix}/executions/{body['id']}")
                if polled.status_code == 404:
                    continue  # not indexed yet
                if polled.status_code >= 400:
                    raise click.ClickException(describe_error(polled))
                body = polled.json()
    state = body["state"]["current"]
    click.echo(
        json.dumps(
            {"id": body["id"], "state": state, "outputs": body.get("outputs") or {}}, indent=2
        )
    )
    if wait and state != "SUCCESS":
        sys.exit(1)
