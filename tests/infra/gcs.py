"""Google Cloud Storage for the tests: the ``gcp-storage-emulator`` package from PyPI, run as a
process of this virtualenv on a free port, in memory, with one bucket."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.infra.processes import ManagedProcess, free_ports, http_ok

BUCKET = "lanner-test"


class GcsEmulator:
    def __init__(self, directory: Path) -> None:
        (self.port,) = free_ports(1)
        self.host = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("gcp-storage-emulator")
        self.process = ManagedProcess(
            "gcp-storage-emulator",
            [str(exe), "start", "--host", "127.0.0.1", "--port", str(self.port)]
            + ["--in-memory", "--default-bucket", BUCKET, "--quiet"],
            directory / "gcs-emulator.log",
        )

    def start(self) -> GcsEmulator:
        self.process.start()
        self.process.wait_for(
            lambda: http_ok(f"{self.host}/storage/v1/b/{BUCKET}"), 30, "the bucket to answer"
        )
        return self

    def stop(self) -> None:
        self.process.stop()
