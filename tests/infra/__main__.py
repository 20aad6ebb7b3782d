"""``python -m tests.infra fetch|up|down|status``: see ``tests/infra/cli.py``."""

from __future__ import annotations

from .cli import main

main()
