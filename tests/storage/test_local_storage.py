"""The storage contract on a local directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import StorageError
from common.storage.local import LocalStorage
from tests.contracts.storage import StorageContract


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


class TestLocalStorage(StorageContract):
    def test_nothing_is_written_outside_the_base_directory(self, tmp_path: Path) -> None:
        storage = LocalStorage(tmp_path / "storage")
        for uri in ("lanner:///", "lanner:///../escape"):
            with pytest.raises(StorageError):
                storage.put(uri, b"x")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["storage"]
