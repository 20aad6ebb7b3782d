"""``lanner flow``: validate flow files locally, deploy a directory of flows to a server."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from common.cli._http import api_client, api_prefix, describe_error, server_option, tenant_option
from common.errors import FlowValidationError


@click.group()
def flow() -> None:
    """Validate and deploy flows."""


@flow.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check flow FILES locally; print every problem with its path and line."""
    from common.flow.parser import parse_flow

    invalid = 0
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            click.echo(f"{path}: cannot read: {exc}", err=True)
            invalid += 1
            continue
        try:
            parsed = parse_flow(source, check_templates=True)
        except FlowValidationError as exc:
            invalid += 1
            click.echo(f"{path}: invalid", err=True)
            for problem in exc.problems:
                line = f":{problem.line}" if problem.line is not None else ""
                click.echo(
                    f"  {path}{line}: {problem.path or '<root>'}: {problem.message}", err=True
                )
            continue
        click.echo(f"{path}: valid ({parsed.namespace}.{parsed.id})")
    if invalid:
        click.echo(f"{invalid} of {len(files)} flow(s) invalid", err=True)
        sys.exit(1)


def _flow_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


@flow.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@server_option
@tenant_option
def deploy(directory: Path, server: str, tenant: str | None) -> None:
    """Create or update every *.yml / *.yaml flow of DIRECTORY on the server."""
    files = _flow_files(directory)
    if not files:
        raise click.ClickException(f"no *.yml or *.yaml file in {directory}")
    failed = 0
    prefix = api_prefix(tenant)
    headers = {"Content-Type": "application/x-yaml"}
    with api_client(server) as client:
        for path in files:
            source = path.read_text(encoding="utf-8", errors="replace")
            response = client.post(f"{prefix}/flows", content=source, headers=headers)
            action = "created"
            if response.status_code == 409:
                try:
                    data = yaml.safe_load(source)
                except yaml.YAMLError:
                    data = None
                ident = (
                    (data.get("namespace"), data.get("id"))
                    if isinstance(data, dict)
                    else (None, None)
                )
                response = client.put(
                    f"{prefix}/flows/{ident[0]}/{ident[1]}", content=source, headers=headers
                )
                action = "updated"
            if response.status_code >= 400:
                failed += 1
                click.echo(f"{path}: {describe_error(response)}", err=True)
                continue
            body = response.json()
            click.echo(
                f"{path}: {action} {body['namespace']}.{body['id']} (revision {body['revision']})"
            )
    if failed:
        click.echo(f"{failed} of {len(files)} flow(s) not deployed", err=True)
        sys.exit(1)
