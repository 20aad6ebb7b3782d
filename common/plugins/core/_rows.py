"""Row files: one item per line, the shape of Kestra's ``.ion`` files.

Kestra writes one Amazon Ion value per line; Lanner writes (and reads) one JSON value per line,
which is Ion text too for every JSON value, so Kestra's row tasks and Lanner's read each other's
JSON-shaped rows. Files are copied to the task's working directory and read line by line, and
results are written to a local file that is then stored streamed: no file is held in memory.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from ._support import WorkerContext


def local_copy(ctx: WorkerContext, uri: str, suffix: str = "") -> str:
    """Download ``uri`` into the working directory (streamed); the local path."""
    fd, path = tempfile.mkstemp(suffix=suffix, dir=ctx.working_dir)
    os.close(fd)
    ctx.download(uri, path)
    return path


def lines(path: str, encoding: str = "utf-8") -> Iterator[str]:
    """The lines of a local file without their line ends (``\\n``, ``\\r\\n``)."""
    with open(path, encoding=encoding, newline="") as source:
        for line in source:
            yield line.rstrip("\r\n") if line.endswith("\n") else line.rstrip("\r")


def reversed_lines(path: str, encoding: str = "utf-8", block: int = 64 * 1024) -> Iterator[str]:
    """The lines of a local file, last first, read backwards by blocks (Commons IO's
    ``ReversedLinesFileReader``): a final line end adds no empty line."""
    with open(path, "rb") as source:
        source.seek(0, os.SEEK_END)
        position = source.tell()
        tail = b""
        first = True
        while position > 0:
            step = min(block, position)
            position -= step
            source.seek(position)
            data = source.read(step) + tail
            parts = data.split(b"\n")
            tail = parts.pop(0)  # maybe the end of a line that starts in an earlier block
            if first and parts and parts[-1] == b"":
                parts.pop()  # the file's final line end
            first = False
            for part in reversed(parts):
                yield part.rstrip(b"\r").decode(encoding)
        if not first:  # the file's first line (the file was not empty)
            yield tail.rstrip(b"\r").decode(encoding)


def parse_row(line: str) -> Any:
    """One row's value (``ValueError`` if the line is not a JSON value)."""
    return json.loads(line)


def row_variables(value: Any) -> dict[str, Any]:
    """The variables an item's expression sees: a map's keys (Kestra renders with the item)."""
    return dict(value) if isinstance(value, dict) else {"value": value}


def write_row(out: IO[str], value: Any) -> None:
    out.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    out.write("\n")


def temp_output(ctx: WorkerContext, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix, dir=ctx.working_dir)
    os.close(fd)
    return path
