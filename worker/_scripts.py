"""Subprocess runner of script tasks, and the ``::{...}::`` protocol of Kestra's script helpers.

A stdout or stderr line that is exactly ``::{json}::`` is a protocol message (what the ``kestra``
PyPI package prints): ``outputs`` (a map merged into the task's ``vars``), ``metrics`` (a list of
``{name, type: counter|timer, value, tags}``) and ``logs`` (a list of ``{level, message}``). Any
other line is logged: stdout at INFO, stderr at ``stderr_level``.

The process runs in its own session (so its own process group). On a kill order or a timeout the
whole group gets SIGTERM, then SIGKILL after ``grace`` seconds; once the main process has exited
the group is SIGKILLed anyway, so a task never leaves a background child behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from common.plugins.core._support import ProcessResult

LogFn = Callable[[str, str], None]
MetricFn = Callable[[str, float, str, Mapping[str, str]], None]

SECRET_PREFIX = "SECRET_"
_LEVELS = {"WARNING": "WARN", "CRITICAL": "ERROR", "FATAL": "ERROR", "NOTSET": "INFO"}


def parse_protocol_line(line: str) -> dict[str, Any] | None:
    """The JSON map of a ``::{...}::`` line, or None when the line is ordinary text."""
    text = line.strip()
    if not (text.startswith("::{") and text.endswith("}::")):
        return None
    try:
        value = json.loads(text[2:-2])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _Collector:
    def __init__(self, log: LogFn, metric: MetricFn, stderr_level: str) -> None:
        self.log = log
        self.metric = metric
        self.stderr_level = stderr_level
        self.vars: dict[str, Any] = {}
        self.stdout_lines = 0
        self.stderr_lines = 0
        self._lock = threading.Lock()

    def line(self, text: str, stderr: bool) -> None:
        message = parse_protocol_line(text)
        if message is None:
            with self._lock:
                if stderr:
                    self.stderr_lines += 1
                else:
                    self.stdout_lines += 1
            self.log(self.stderr_level if stderr else "INFO", text)
            return
        outputs = message.get("outputs")
        if isinstance(outputs, dict):
            with self._lock:
                self.vars.update(outputs)
        for metric in message.get("metrics") or []:
            if isinstance(metric, dict) and "name" in metric and "value" in metric:
                kind = "timer" if metric.get("type") == "timer" else "counter"
                tags = {str(k): str(v) for k, v in (metric.get("tags") or {}).items()}
                try:
                    self.metric(str(metric["name"]), float(metric["value"]), kind, tags)
                except (TypeError, ValueError):
                    self.log("WARN", f"Invalid metric {metric!r}")
        for entry in message.get("logs") or []:
            if isinstance(entry, dict):
                level = str(entry.get("level", "INFO")).upper()
                self.log(_LEVELS.get(level, level), str(entry.get("message", "")))

    def read(self, stream: IO[bytes], stderr: bool) -> None:
        for raw in iter(stream.readline, b""):
            self.line(raw.decode("utf-8", errors="replace").rstrip("\r\n"), stderr)
        stream.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def process_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment without its secrets (``SECRET_*``, read by ``secret()``), the
    worker's interpreter first on PATH, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SECRET_PREFIX)}
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", os.defpath)
    env.update(extra)
    return env


def run_process(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    *,
    kill_event: threading.Event,
    log: LogFn,
    metric: MetricFn,
    stderr_level: str = "ERROR",
    grace: float = 5.0,
) -> ProcessResult:
    collector = _Collector(log, metric, stderr_level)
    if kill_event.is_set():
        return ProcessResult(exit_code=-int(signal.SIGTERM), killed=True)
    proc = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=process_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=collector.read, args=(proc.stdout, False), daemon=True),
        threading.Thread(target=collector.read, args=(proc.stderr, True), daemon=True),
    ]
    for reader in readers:
        reader.start()
    killed = False
    try:
        while True:
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            if kill_event.is_set():
                killed = True
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                break
    finally:
        _signal_group(proc.pid, signal.SIGKILL)  # leftovers of the group
        if proc.poll() is None:
            proc.wait()
        for reader in readers:
            reader.join(timeout=grace)
    return ProcessResult(
        exit_code=proc.returncode,
        vars=collector.vars,
        stdout_lines=collector.stdout_lines,
        stderr_lines=collector.stderr_lines,
        killed=killed,
    )
