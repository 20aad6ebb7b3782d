"""The embedded server's disk fills up (issue 13, item 5): ``lanner server local`` with its data
dir on a small filesystem of its own, executions in flight, the filesystem filled to the last
byte. Writes must fail with a clear error (the API answers 5xx with a message, the process
lives on, reads still answer); once space is freed, every execution accepted completes and
creations are accepted again.

The small filesystem: a 32 MB tmpfs mounted in a mount namespace of the server's own
(``unshare --user --map-root-user --mount``, no root needed where user namespaces are allowed,
and nothing left mounted on the host if the test dies). The test reaches it through
``/proc/<pid>/root``, fills it with one file until ENOSPC, and frees it by deleting that file.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.faults import report
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

NAMESPACE = "lanner.faults"
DISK = "32m"
IN_FLIGHT = 20
FULL_SECONDS = 8.0
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}
FLOW = f"""\
id: disk
namespace: {NAMESPACE}
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ execution.id }}}}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "tok:{{{{ execution.id }}}}:{{{{ task.id }}}}"
"""
# mounts a tmpfs of $LANNER_FAULT_DISK_SIZE on $LANNER_FAULT_DISK, then runs the server there
_MOUNT = 'mkdir -p "$LANNER_FAULT_DISK" && mount -t tmpfs -o size="$LANNER_FAULT_DISK_SIZE" '
_MOUNT += 'tmpfs "$LANNER_FAULT_DISK" && exec "$@"'
WRAPPER = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _MOUNT, "sh"]


def _fill(directory: Path) -> int:
    """Writes one file until the filesystem refuses: the bytes written. Unbuffered, so that no
    buffered rest fails again when the file is closed."""
    written = 0
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (256 * 1024, 4096, 512):
            block = b"\0" * size
            while True:
                try:
                    written += os.write(fd, block)
                except OSError:
                    break
    finally:
        os.close(fd)
    return written


def _state(api: httpx.Client, execution_id: str) -> str | None:
    try:
        answer = api.get(f"/api/v1/executions/{execution_id}")
    except httpx.HTTPError:
        return None
    return answer.json()["state"]["current"] if answer.status_code == 200 else None


def test_a_full_disk_refuses_writes_clearly_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    assert probe.returncode == 0, (
        "this test mounts its small filesystem in a user and mount namespace "
        f"(unshare --user --map-root-user --mount): {probe.stderr.decode()}"
    )
    data = tmp_path / "data"
    monkeypatch.setenv("LANNER_FAULT_DISK", str(data))  # read by WRAPPER's script
    monkeypatch.setenv("LANNER_FAULT_DISK_SIZE", DISK)
    server = LocalServer(tmp_path, wrapper=WRAPPER)
    try:
        server.start(timeout=120)
        assert server.process is not None and server.process.pid is not None
        disk = Path(f"/proc/{server.process.pid}/root") / str(data).lstrip("/")
        run = uuid.uuid4().hex[:8]
        api = httpx.Client(base_url=server.url, timeout=30)
        answer = api.post(
            "/api/v1/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"}
        )
        assert answer.status_code == 200, answer.text
        accepted: list[str] = []
        refused: Counter[int] = Counter()
        messages: set[str] = set()

        def create() -> httpx.Response:
            response = api.post(
                f"/api/v1/executions/{NAMESPACE}/disk", params={"labels": f"run:{run}"}
            )
            if response.status_code == 200:
                accepted.append(response.json()["id"])
            else:
                refused[response.status_code] += 1
                messages.add(response.json().get("message", response.text)[:200])
            return response

        for _ in range(IN_FLIGHT):
            assert create().status_code == 200
        in_flight = sum(1 for i in accepted if _state(api, i) not in TERMINAL)
        filled = _fill(disk)
        full_at = time.monotonic()
        accepted_before = len(accepted)
        # while full: creations refused with a message, never a crash (the first ones may
        # still fit in pages SQLite holds free); the disk stays full FULL_SECONDS, long enough
        # for the executions in flight to need writes
        wait_until(
            lambda: create() is not None and sum(refused.values()) >= 10,
            120,
            "creations refused on the full disk",
            interval=0,
        )
        wait_until(
            lambda: create() is not None and time.monotonic() - full_at >= FULL_SECONDS,
            FULL_SECONDS + 60,
            "the disk full for its duration",
            interval=0.2,
        )
        accepted_while_full = len(accepted) - accepted_before
        reads = Counter(api.get(f"/api/v1/executions/{i}").status_code for i in accepted[:5])
        searched = api.get("/api/v1/executions/search", params={"labels": f"run:{run}"})
        assert server.process.running, "the server died when its disk filled up"
        # in flight while full: the executions accepted before stay unfinished or end
        os.unlink(disk / "filler")
        freed = time.monotonic()
        for _ in range(10):
            assert create().status_code == 200, refused
        completed = wait_until(
            lambda: all(_state(api, i) in TERMINAL for i in accepted),
            float(os.environ.get("LANNER_FAULT_DISK_WAIT", "240")),
            "every accepted execution to end after space was freed",
            interval=0.5,
            diagnose=lambda: _stuck(api, accepted) + f"; log: {server.log_path}",
        )
        recovered = time.monotonic() - freed
        states = Counter(_state(api, i) for i in accepted)
        found = _all(api, run)
        phantoms = {i: s for i, s in found.items() if i not in accepted}
        assert completed
    finally:
        server.stop()
    rows: list[tuple[str, object, object]] = [
        ("filesystem", f"tmpfs {DISK}, filled with {filled // 1024} KiB", "—"),
        ("executions in flight when the disk filled", in_flight, "—"),
        ("creations accepted while full (free pages)", accepted_while_full, "—"),
        ("creations refused while full", dict(refused), "5xx with a message"),
        ("refusal messages", "; ".join(sorted(messages)) or "—", "—"),
        ("reads while full (GET execution)", dict(reads), "200"),
        ("search while full", searched.status_code, "200"),
        ("executions accepted", len(accepted), "—"),
        ("final states of the accepted", dict(states), "all SUCCESS"),
        ("executions visible though refused", len(phantoms), 0),
        ("seconds full", f"{freed - full_at:.1f}", "—"),
        ("seconds from freeing to every accepted execution ended", f"{recovered:.1f}", "—"),
    ]
    report.add_section("Embedded server: disk full", report.count_table(rows))
    assert refused and all(500 <= status < 600 for status in refused), refused
    assert all(messages), messages
    assert set(reads) == {200}, reads
    assert searched.status_code == 200, searched.text
    assert states == Counter({"SUCCESS": len(accepted)}), states
    assert phantoms == {}, phantoms


def _stuck(api: httpx.Client, ids: list[str]) -> str:
    stuck: dict[str, Any] = {}
    for execution_id in ids:
        answer = api.get(f"/api/v1/executions/{execution_id}")
        body: dict[str, Any] = (
            answer.json() if answer.status_code == 200 else {"state": {"current": answer}}
        )
        if body["state"]["current"] not in TERMINAL:
            runs = [(t["taskId"], t["state"]["current"]) for t in body.get("taskRunList") or []]
            stuck[execution_id] = (body["state"]["current"], runs)
    return f"{len(stuck)} not ended: {dict(list(stuck.items())[:8])}"


def _all(api: httpx.Client, run: str) -> dict[str, Any]:
    answer = api.get("/api/v1/executions/search", params={"labels": f"run:{run}", "size": 1000})
    answer.raise_for_status()
    return {e["id"]: e["state"]["current"] for e in answer.json()["results"]}
