"""The storage contract on Google Cloud Storage, served by the gcp-storage-emulator package."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.backends import create_storage
from common.settings import Settings
from common.storage.gcs import EMULATOR_ENV, GcsStorage, gcs_client
from tests.contracts.storage import BASE, StorageContract
from tests.infra.gcs import BUCKET, GcsEmulator


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    started = GcsEmulator(tmp_path_factory.mktemp("gcs")).start()
    yield started
    started.stop()


@pytest.fixture
def storage(emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsStorage:
    monkeypatch.setenv(EMULATOR_ENV, emulator.host)
    # a prefix per test: each sees an empty storage in the shared bucket
    return GcsStorage(BUCKET, f"tests/{uuid.uuid4().hex}", client=gcs_client())


class TestGcsStorage(StorageContract):
    def test_objects_are_named_after_the_uri_under_the_prefix(self, storage: GcsStorage) -> None:
        storage.put(BASE + "a.txt", b"x", content_type="text/plain")
        names = [b.name for b in storage.client.list_blobs(storage.bucket, prefix=storage.prefix)]
        assert names == [storage.prefix + "main/company/team/hello/executions/e1/a.txt"]
        assert storage.stat(BASE + "a.txt").content_type == "text/plain"

    def test_settings_choose_gcs(
        self, emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv(EMULATOR_ENV, emulator.host)
        settings = Settings(
            storage="gcs", gcs_bucket=BUCKET, gcs_prefix="chosen", data_dir=tmp_path
        )
        chosen = create_storage(settings)
        assert isinstance(chosen, GcsStorage) and chosen.prefix == "chosen/"
        chosen.put(BASE + "b.txt", b"y")
        assert chosen.get(BASE + "b.txt") == b"y"
        assert not (tmp_path / "storage").exists()  # nothing went to the local directory
