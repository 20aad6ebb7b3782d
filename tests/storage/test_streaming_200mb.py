"""A 200 MB FILE input streams through `lanner server local`: uploaded, copied by a script task
(input file in, output file out) and downloaded, while the server's resident memory (its API
and its worker) grows by less than 100 MB. The measured growth is printed for the note."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bench._server import LocalServer
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.timeout(600)]

SIZE = 200 * 1024 * 1024
GROWTH_LIMIT = 100 * 1024 * 1024
BOUNDARY = "lanner-200mb"
FLOW = """\
id: big
namespace: lanner.streaming
inputs:
  - id: upload
    type: FILE
tasks:
  - id: copy
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      data.bin: "{{ inputs.upload }}"
    commands:
      - cp data.bin copy.bin
    outputFiles:
      - copy.bin
"""


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def _body(digest: hashlib._Hash) -> Iterator[bytes]:
    """A multipart body whose file part is SIZE pseudo-random bytes, made while sent."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="upload"; filename="data.bin"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    rng = random.Random(7)
    left = SIZE
    while left:
        chunk = rng.randbytes(min(left, 1024 * 1024))
        digest.update(chunk)
        left -= len(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    started = LocalServer(tmp_path)
    started.start()
    yield started
    started.stop()


def _ended(client: httpx.Client, execution_id: str) -> dict[str, object] | None:
    execution = client.get(f"/api/v1/main/executions/{execution_id}").json()
    return execution if execution["state"]["current"] in ("SUCCESS", "FAILED") else None


def test_a_200_mb_file_streams_through_upload_task_and_download(server: LocalServer) -> None:
    assert server.process is not None and server.process.pid is not None
    pid = server.process.pid
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yaml = {"content-type": "application/x-yaml"}
        assert client.post("/api/v1/main/flows", content=FLOW, headers=yaml).is_success
        # warm: a small file through the same path first, so imports and caches are counted
        small = {"upload": ("small.bin", b"warm", "application/octet-stream")}
        warm = client.post("/api/v1/main/executions/lanner.streaming/big", files=small).json()
        wait_until(lambda: _ended(client, warm["id"]), 60, "the warm-up execution")
        before = _memory(pid)["VmRSS"]

        sent = hashlib.sha256()
        response = client.post(
            "/api/v1/main/executions/lanner.streaming/big",
            content=_body(sent),
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        assert response.status_code == 200, response.text
        execution_id = response.json()["id"]
        ended = wait_until(lambda: _ended(client, execution_id), 300, "the 200 MB execution")
        assert ended["state"]["current"] == "SUCCESS", ended  # type: ignore[index]
        (run,) = ended["taskRunList"]  # type: ignore[index]
        copy_uri = run["outputs"]["outputFiles"]["copy.bin"]

        received = hashlib.sha256()
        size = 0
        with client.stream(
            "GET", f"/api/v1/main/executions/{execution_id}/file", params={"path": copy_uri}
        ) as download:
            assert download.status_code == 200
            for chunk in download.iter_bytes():
                received.update(chunk)
                size += len(chunk)
        peak = _memory(pid)["VmHWM"]
    assert size == SIZE
    assert received.hexdigest() == sent.hexdigest()
    growth = peak - before
    print(
        f"\n200 MB through upload, a script task and download: server peak RSS grew by "
        f"{growth / 1024 / 1024:.1f} MB (from {before / 1024 / 1024:.1f} MB)"
    )
    assert growth < GROWTH_LIMIT, f"resident memory grew by {growth} bytes"
