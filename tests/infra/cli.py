"""Command line of tests/infra (placeholder until up/down/status land)."""

from __future__ import annotations

import argparse
import sys

from . import provision
from .errors import InfraError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.infra")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download Kafka and Elasticsearch into the cache")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            provision.fetch()
    except InfraError as exc:
        print(f"tests.infra {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)
