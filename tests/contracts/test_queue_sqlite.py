"""The queue contract on the embedded SQLite queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.contracts.queue import QueueContract


@pytest.fixture
def queue_settings(tmp_path: Path) -> dict[str, Any]:
    return {
        "queue": "sqlite",
        "data_dir": str(tmp_path / "data"),
        "queue_max_record_bytes": 100_000,
    }


class TestSqliteQueue(QueueContract):
    pass
