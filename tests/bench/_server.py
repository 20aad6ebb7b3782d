"""A ``lanner server local`` subprocess on a temporary data dir and a free port."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.infra.processes import ManagedProcess, free_ports, http_ok, lanner_executable


class LocalServer:
    """``lanner server local`` in its own process group, logging to ``<data_dir>/server.log``.

    ``wrapper`` prefixes the command line (e.g. ``py-spy record -o out.svg --``); ``env`` adds
    variables to the server's environment (``LANNER_...`` settings).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        wrapper: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ):
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.port = port or free_ports(1)[0]
        self.wrapper = list(wrapper)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self.process: ManagedProcess | None = None

    def argv(self) -> list[str]:
        exe = lanner_executable()
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "common.cli"]
        return [
            *self.wrapper,
            *command,
            "server",
            "local",
            "--data-dir",
            str(self.data_dir / "data"),
            "--port",
            str(self.port),
        ]

    def start(self, timeout: float = 60.0) -> None:
        self.process = ManagedProcess(
            "lanner server local", self.argv(), self.log_path, env=self.env or None
        ).start()
        self.process.wait_for(
            lambda: http_ok(f"{self.url}/health/ready"), timeout, "the API to answer"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        """kill -9 of the process group; returns once every process of it is gone."""
        if self.process is not None:
            self.process.kill()
            self.process = None
