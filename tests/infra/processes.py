"""Real subprocesses with their own log file: start, stop, kill -9, and "did it die at start?".

Every process is started in its own session (process group), so stopping or killing it also
reaches its children (the Elasticsearch launcher forks the server JVM). Processes started for a
test session also get ``PR_SET_PDEATHSIG``: if pytest itself is killed, the kernel kills them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import InfraError
from .waiting import WaitTimeout, wait_until

_PR_SET_PDEATHSIG = 1

# Every process started in this interpreter, for the "nothing left behind" check.
STARTED: list[ManagedProcess] = []


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _stat_fields(path: str) -> list[str] | None:
    """The fields of a ``/proc/.../stat`` file after the command name (state first)."""
    try:
        with open(path) as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """True while one thread of ``pid`` is not a zombie. The leader thread alone is not enough:
    it shows as a zombie as soon as it exits, while the other threads (and the process) live on
    until the last of them has exited, and only then can the process be reaped."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for tid in tids:
        fields = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
        if fields is not None and fields[0] not in ("Z", "X"):
            return True
    return False


def group_pids(pgid: int) -> list[int]:
    """Live pids of process group ``pgid`` (the leader and every descendant that stayed in it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(f"/proc/{entry}/stat")
        if fields is not None and int(fields[2]) == pgid and pid_alive(int(entry)):
            pids.append(int(entry))
    return pids


def signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ensure_port_free(port: int, what: str) -> None:
    if port_open(port):
        raise InfraError(f"port {port} on 127.0.0.1 is already in use; {what} cannot bind it")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True if ``url`` answers 2xx, e.g. ``proc.wait_for(lambda: http_ok(ready_url), 30, ...)``."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 64 * 1024))
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One subprocess, its process group and its log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        detached: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.detached = detached
        self._popen: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def start(self) -> ManagedProcess:
        """Starts the process, appending stdout and stderr to the log file."""
        if self.running:
            raise InfraError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = os.environ.copy()
        if self.env:
            env.update(self.env)
        with open(self.log_path, "ab") as log:
            log.write(
                f"\n=== {time.strftime('%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode()
            )
            log.flush()
            try:
                self._popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,
                    preexec_fn=None if self.detached else _die_with_parent,
                )
            except OSError as exc:
                raise InfraError(f"cannot start {self.name}: {exc}", self.log_path) from exc
        self.pid = self._popen.pid
        STARTED.append(self)
        return self

    @property
    def running(self) -> bool:
        if self.pid is None:
            return False
        if self._popen is not None:
            return self._popen.poll() is None
        return pid_alive(self.pid)

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def pids(self) -> list[int]:
        """Every live pid of this process's group (for the "nothing left behind" checks)."""
        return group_pids(self.pid) if self.pid is not None else []

    def check_running(self, during: str = "start") -> None:
        """Raises ``InfraError`` naming the exit code and the log file if the process has exited."""
        if not self.running:
            raise InfraError(
                f"{self.name} exited (code {self.returncode}) during {during}",
                self.log_path,
                tail(self.log_path),
            )

    def wait_for(self, predicate: Callable[[], object], timeout: float, what: str) -> None:
        """Waits for ``predicate`` while failing at once if the process dies meanwhile."""

        def check() -> object:
            self.check_running(what)
            return predicate()

        wait_until(
            check,
            timeout,
            f"{self.name}: {what}",
            interval=0.25,
            diagnose=lambda: f"log file: {self.log_path}\n{tail(self.log_path, 15)}",
        )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the group, then SIGKILL after ``timeout``; returns once every pid is gone."""
        if self.pid is None:
            return
        signal_group(self.pid, signal.SIGTERM)
        try:
            self._wait_gone(timeout)
        except InfraError:
            self.kill()

    def kill(self, timeout: float = 15.0) -> None:
        """kill -9 the whole group and wait until every pid is gone."""
        if self.pid is None:
            return
        signal_group(self.pid, signal.SIGKILL)
        self._wait_gone(timeout)

    def _wait_gone(self, timeout: float) -> None:
        assert self.pid is not None
        pgid = self.pid

        def gone() -> bool:
            # our own child is gone once reaped, so that ``returncode`` is set on return
            if self._popen is not None and self._popen.poll() is None:
                return False
            return not group_pids(pgid)

        wait_until(gone, timeout, f"{self.name} (process group {pgid}) to exit")

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, log={str(self.log_path)!r})"


def leftovers() -> list[ManagedProcess]:
    """Processes started here (not detached ones) that still have a live pid in their group."""
    return [proc for proc in STARTED if not proc.detached and proc.pids()]


def lanner_executable() -> Path:
    """The ``lanner`` console script of the running interpreter's environment (the venv)."""
    return Path(sys.executable).parent / "lanner"


def start_lanner(
    args: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    name: str | None = None,
) -> ManagedProcess:
    """Starts a Lanner component, e.g. ``start_lanner(["server", "worker"], log)``."""
    exe = lanner_executable()
    if not exe.exists():
        raise InfraError(f"{exe} does not exist; run `make install` first")
    proc = ManagedProcess(
        name or "lanner " + " ".join(args), [str(exe), *args], log_path, env=env, cwd=cwd
    )
    return proc.start()


def dump_stacks(processes: Sequence[ManagedProcess], timeout: float = 10.0) -> None:
    """Each running process writes its threads' stacks to its log (the Kafka components and
    the webserver register faulthandler on SIGUSR1; the Faust executor answers with mode's
    dump of threads and tasks); waits until each dump is in its log or the process has exited.
    A diagnostic for a failed test: never raises for a missing dump."""
    sizes: dict[ManagedProcess, int] = {}
    for proc in processes:
        if proc.running and proc.pid is not None:
            sizes[proc] = proc.log_path.stat().st_size if proc.log_path.exists() else 0
            os.kill(proc.pid, signal.SIGUSR1)

    def dumped(proc: ManagedProcess) -> bool:
        if not proc.running:
            return True
        with open(proc.log_path, "rb") as log:
            log.seek(sizes[proc])
            written = log.read()
        return b"most recent call first" in written or b"Stack for <Task" in written

    for proc in sizes:
        try:
            wait_until(lambda proc=proc: dumped(proc), timeout, f"{proc.name}'s stacks")
        except WaitTimeout:
            pass
