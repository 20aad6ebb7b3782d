"""The one error the infrastructure raises: it always names the cause and the log file."""

from __future__ import annotations

from pathlib import Path


class InfraError(RuntimeError):
    """A service could not be provisioned, started or stopped.

    The message says what failed and where to look; ``log_path`` is the file to read, if any.
    """

    def __init__(self, message: str, log_path: Path | None = None, log_tail: str = "") -> None:
        text = message
        if log_path is not None:
            text += f"\n  log file: {log_path}"
        if log_tail:
            text += "\n  last lines of the log:\n" + "\n".join(
                "    " + line for line in log_tail.splitlines()
            )
        super().__init__(text)
        self.log_path = log_path
