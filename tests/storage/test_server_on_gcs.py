"""`lanner server local` with LANNER_STORAGE=gcs: the example flow and a FILE input run, and
the files are objects of the bucket, none on the local disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.storage.gcs import EMULATOR_ENV, gcs_client
from tests.bench._server import LocalServer
from tests.infra.gcs import BUCKET, GcsEmulator
from tests.infra.waiting import wait_until

FILES = """\
id: files
namespace: lanner.gcs
inputs:
  - id: upload
    type: FILE
tasks:
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.upload) }}"
"""
EXAMPLE = Path(__file__).parents[2] / "examples" / "flows" / "hello.yaml"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    emulator = GcsEmulator(tmp_path).start()
    monkeypatch.setenv(EMULATOR_ENV, emulator.host)
    monkeypatch.setenv("LANNER_STORAGE", "gcs")
    monkeypatch.setenv("LANNER_GCS_BUCKET", BUCKET)
    monkeypatch.setenv("LANNER_GCS_PREFIX", "server")
    started = LocalServer(tmp_path / "local")
    started.start()
    yield started
    started.stop()
    emulator.stop()


def _ended(client: httpx.Client, execution_id: str) -> dict[str, object] | None:
    execution = client.get(f"/api/v1/main/executions/{execution_id}").json()
    return execution if execution["state"]["current"] in ("SUCCESS", "FAILED") else None


def test_the_example_and_a_file_input_run_with_their_files_in_the_bucket(
    server: LocalServer,
) -> None:
    yaml = {"content-type": "application/x-yaml"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for source in (EXAMPLE.read_text(), FILES):
            assert client.post("/api/v1/main/flows", content=source, headers=yaml).is_success
        example = EXAMPLE.read_text().split("namespace:")[1].split()[0]
        example_id = EXAMPLE.read_text().split("id:")[1].split()[0]
        first = client.post(f"/api/v1/main/executions/{example}/{example_id}").json()["id"]
        upload = {"upload": ("hello.txt", b"hello from the bucket", "text/plain")}
        second = client.post("/api/v1/main/executions/lanner.gcs/files", files=upload)
        assert second.status_code == 200, second.text
        ended = wait_until(lambda: _ended(client, second.json()["id"]), 60, "the FILE flow")
        assert ended["state"]["current"] == "SUCCESS", ended  # type: ignore[index]
        outputs = {tr["taskId"]: tr.get("outputs") for tr in ended["taskRunList"]}  # type: ignore[index]
        assert outputs["read"] == {"value": "hello from the bucket"}
        example_run = wait_until(lambda: _ended(client, first), 60, "the example flow")
        assert example_run["state"]["current"] == "SUCCESS", example_run  # type: ignore[index]
    names = [b.name for b in gcs_client().list_blobs(BUCKET, prefix="server/")]
    expected = f"server/main/lanner/gcs/files/executions/{second.json()['id']}/"
    assert any(n.startswith(expected) and n.endswith("hello.txt") for n in names), names
    local = server.data_dir / "data" / "storage"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))
