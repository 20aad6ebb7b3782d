"""User programs that might never end, run with a deadline: jq programs and regular expressions.

A template, a flow trigger condition or an input validator given by a user can hold a jq program
(``[range(1e9)]``, ``def f: f; f``) or a regular expression with catastrophic backtracking
(``(a+)+$``). Both run in C without checking any deadline, so in the process that renders they
would hang a worker or executor thread for ever. Here:

- a regular expression RE2 accepts runs in-process with RE2 (``google-re2``): linear time, it
  cannot backtrack;
- one RE2 refuses (backreferences, lookaround: Java's regex has them, so Kestra's flows may use
  them) and every jq program run in a helper process (``common/_bounded_child.py``: an empty
  environment, a memory limit) that is killed when the deadline passes.

Both engines use ASCII classes (``\\d``, ``\\w``, ``\\s``, ``\\b``), as Java's regex does by
default. One difference remains: RE2's ``$`` (without ``(?m)``) matches only at the very end of
the text, Java's and Python's also before a final line break.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import re2  # type: ignore[import-untyped]

MAX_JQ_SECONDS = 5.0
MAX_REGEX_SECONDS = 2.0
HELPER_MEMORY_BYTES = 2 * 1024 * 1024 * 1024
HELPER_START_SECONDS = 60.0  # a loaded machine: generous, and not counted in a deadline
_IDLE_HELPERS = 4
_CHILD = Path(__file__).with_name("_bounded_child.py")


class LimitExceeded(Exception):
    """The program did not finish within its deadline, or ran out of memory; the message says
    which limit (callers prefix the function's name)."""


class ProgramError(Exception):
    """The program failed (a jq error, a bad group reference): the message is the engine's."""


# ------------------------------------------------------------------------------ helper processes
class _Helper:
    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own script, by path
            [sys.executable, "-I", str(_CHILD), str(HELPER_MEMORY_BYTES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            close_fds=True,
            start_new_session=True,
        )
        self.buffer = bytearray()
        try:  # started (interpreter, jq loaded): request deadlines do not include the start
            started = self._line(time.monotonic() + HELPER_START_SECONDS)
        except (OSError, EOFError):
            started = None
        if started is None:
            self.kill()
            raise LimitExceeded(
                f"the helper process did not start within {HELPER_START_SECONDS:g} s"
            )

    def call(self, request: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        """The answer, or None when the deadline passed (the helper is then unusable)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        line = self._line(deadline)
        if line is None:
            return None
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _line(self, deadline: float) -> bytes | None:
        """The next line the helper writes, or None when the deadline passed first."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while (end := self.buffer.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise EOFError("the helper process ended")
                self.buffer += chunk
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


_idle: list[_Helper] = []
_idle_lock = threading.Lock()


def _close_idle() -> None:
    with _idle_lock:
        helpers, _idle[:] = list(_idle), []
    for helper in helpers:
        helper.kill()


atexit.register(_close_idle)


def _forget_idle_in_child() -> None:
    # a forked child must not share its parent's helpers (their pipes): it starts its own
    _idle.clear()


os.register_at_fork(after_in_child=_forget_idle_in_child)


def _in_helper(request: dict[str, Any], seconds: float, limit_message: str) -> dict[str, Any]:
    with _idle_lock:
        helper = _idle.pop() if _idle else None
    if helper is None or helper.process.poll() is not None:
        helper = _Helper()
    deadline = time.monotonic() + seconds
    try:
        answer = helper.call({**request, "seconds": seconds}, deadline)
    except (OSError, EOFError, ValueError):
        helper.kill()
        raise LimitExceeded(
            f"the helper process ended (out of memory: limit {HELPER_MEMORY_BYTES >> 20} MiB)"
        ) from None
    except BaseException:
        helper.kill()
        raise
    if answer is None:
        helper.kill()
        raise LimitExceeded(limit_message)
    with _idle_lock:
        if len(_idle) < _IDLE_HELPERS:
            _idle.append(helper)
            helper = None
    if helper is not None:
        helper.kill()
    if answer.get("memory"):
        raise LimitExceeded(f"ran out of memory (limit {HELPER_MEMORY_BYTES >> 20} MiB)")
    return answer


# ------------------------------------------------------------------------------------------- jq
def run_jq(program: str, text: str, seconds: float | None = None) -> list[Any]:
    """The outputs of the (already checked) jq ``program`` on the JSON ``text``."""
    seconds = MAX_JQ_SECONDS if seconds is None else seconds
    answer = _in_helper(
        {"op": "jq", "program": program, "text": text},
        seconds,
        f"the program did not finish within {seconds:g} s (limit)",
    )
    if "error" in answer:
        raise ProgramError(answer["error"])
    result: list[Any] = answer["result"]
    return result


# ------------------------------------------------------------------------- regular expressions
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    """The RE2 program of ``pattern``, or None when only a backtracking engine can run it
    (``re.error`` when no engine can)."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error:
        re.compile(pattern, re.ASCII)  # raises re.error for a pattern no engine takes
        return None


def check(pattern: str) -> None:
    """Raise ``re.error`` when ``pattern`` is not a regular expression."""
    _compiled(pattern)


def _timeout(seconds: float) -> str:
    return f"the regular expression did not finish within {seconds:g} s (limit)"


def fullmatch(pattern: str, text: str, seconds: float | None = None) -> bool:
    seconds = MAX_REGEX_SECONDS if seconds is None else seconds
    compiled = _compiled(pattern)
    if compiled is not None:
        return compiled.fullmatch(text) is not None
    request = {"op": "fullmatch", "pattern": pattern, "text": text}
    return bool(_in_helper(request, seconds, _timeout(seconds))["result"])


def search(pattern: str, text: str, seconds: float | None = None) -> bool:
    seconds = MAX_REGEX_SECONDS if seconds is None else seconds
    compiled = _compiled(pattern)
    if compiled is not None:
        return compiled.search(text) is not None
    request = {"op": "search", "pattern": pattern, "text": text}
    return bool(_in_helper(request, seconds, _timeout(seconds))["result"])


def sub(
    pattern: str,
    template: str,
    text: str,
    max_output: int,
    seconds: float | None = None,
    tick: Callable[[], None] | None = None,
) -> str | None:
    """``re.sub`` with a Python template (``\\1``, ``\\g<name>``); None when the result would be
    longer than ``max_output`` characters (measured before it is built)."""
    seconds = MAX_REGEX_SECONDS if seconds is None else seconds
    compiled = _compiled(pattern)
    if compiled is None:
        request = {
            "op": "sub",
            "pattern": pattern,
            "template": template,
            "text": text,
            "max_output": max_output,
        }
        answer = _in_helper(request, seconds, _timeout(seconds))
        if "error" in answer:
            raise ProgramError(answer["error"])
        return None if answer.get("too_long") else str(answer["result"])
    references: list[int | str] = [
        int(number) if number else name
        for number, name in re.findall(r"\\(?:(\d+)|g<(\w+)>)", template)
    ]
    worst_piece = len(template) + len(references) * len(text)
    if len(text) + (len(text) + 1) * worst_piece > max_output:
        size = len(text)
        try:
            for index, match in enumerate(compiled.finditer(text)):
                if tick is not None and index % 4096 == 0:
                    tick()
                size += len(template) - (match.end() - match.start())
                size += sum(len(match.group(r) or "") for r in references)
                if size > max_output:
                    return None
        except (IndexError, KeyError, re2.error):
            pass  # a bad group reference: sub() names it below
    try:
        return str(compiled.sub(template, text))
    except (IndexError, KeyError, re2.error, re.error) as exc:
        raise ProgramError(str(exc)) from exc
