"""The internal storage contract, written once and run against every backend.

A backend's test module subclasses ``StorageContract`` and provides a ``storage`` fixture
returning a fresh, empty ``Storage``.
"""

from __future__ import annotations

import hashlib
import io
import random
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from common.errors import NotFoundError, StorageError
from common.storage.base import CHUNK_SIZE, Storage, execution_uri

BASE = execution_uri("main", "company.team", "hello", "e1")  # lanner:///main/company/team/hello/...
BIG = 48 * 1024 * 1024
# a streamed file of BIG bytes may hold a few chunks in memory at once, never the file
STREAM_MEMORY = 8 * CHUNK_SIZE


class Generated(io.RawIOBase):
    """``size`` pseudo-random bytes made while read: a big upload that is never in memory."""

    def __init__(self, size: int, seed: int = 1) -> None:
        self.left = size
        self.rng = random.Random(seed)
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left, 256 * 1024)
        chunk = self.rng.randbytes(n)
        buffer[:n] = chunk
        self.digest.update(chunk)
        self.left -= n
        return n


TRAVERSALS = [
    "lanner:///../outside",
    "lanner:///company/../../outside",
    "lanner:///company/team/../../../outside/file",
    "lanner://..",
    "lanner:///company/%2e%2e/%2E%2E/outside",  # encoded
    "lanner:///company/%2e%2e%2f%2e%2e%2foutside",
    "lanner:///company/..%5c..%5coutside",  # an encoded backslash
    "lanner:///company\\..\\outside",
    "kestra:///company/../../outside",  # Kestra's scheme, read too, is confined the same way
    "kestra:///company/%2e%2e/%2E%2E/outside",
]
NOT_OURS = ["file:///etc/passwd", "/etc/passwd", "company/team/file", "s3:///company/f"]


class StorageContract:
    """Behaviour every internal storage backend must show."""

    def test_put_get_round_trip(self, storage: Storage) -> None:
        uri = BASE + "data.bin"
        assert storage.put(uri, b"\x00\x01 hello") == uri
        assert storage.get(uri) == b"\x00\x01 hello"
        assert storage.size(uri) == 8
        assert storage.exists(uri)
        storage.put(uri, b"replaced")
        assert storage.get(uri) == b"replaced"
        empty = BASE + "empty"
        storage.put(empty, b"")
        assert storage.get(empty) == b"" and storage.size(empty) == 0 and storage.exists(empty)

    def test_missing_files(self, storage: Storage) -> None:
        uri = BASE + "nope.txt"
        assert not storage.exists(uri)
        assert storage.delete(uri) is False
        with pytest.raises(NotFoundError):
            storage.get(uri)
        with pytest.raises(NotFoundError):
            storage.stream(uri)
        with pytest.raises(NotFoundError):
            storage.size(uri)
        assert storage.list(BASE) == []

    def test_delete(self, storage: Storage) -> None:
        uri = BASE + "gone.txt"
        storage.put(uri, b"x")
        assert storage.delete(uri) is True
        assert not storage.exists(uri)
        assert storage.delete(uri) is False
        with pytest.raises(NotFoundError):
            storage.get(uri)

    def test_list_gives_the_uris_files_were_put_at(self, storage: Storage) -> None:
        uris = [BASE + "a.txt", BASE + "sub/b.txt", BASE + "sub/deeper/c.txt"]
        for uri in reversed(uris):
            storage.put(uri, b"x")
        storage.put(execution_uri("main", "company.team", "hello", "e2") + "other.txt", b"x")
        assert storage.list(BASE) == sorted(uris)
        assert storage.list(BASE + "sub/") == sorted(uris[1:])
        assert storage.list(BASE + "sub") == sorted(uris[1:])
        assert [storage.get(uri) for uri in storage.list(BASE)] == [b"x"] * 3

    def test_a_folder_is_not_a_file(self, storage: Storage) -> None:
        storage.put(BASE + "sub/file.txt", b"x")
        folder = BASE + "sub"
        assert not storage.exists(folder)
        assert storage.delete(folder) is False
        with pytest.raises(NotFoundError):
            storage.get(folder)
        with pytest.raises(NotFoundError):
            storage.stream(folder)
        with pytest.raises(NotFoundError):
            storage.size(folder)
        assert storage.get(BASE + "sub/file.txt") == b"x"

    def test_writes_that_cannot_be_files_are_refused(self, storage: Storage) -> None:
        storage.put(BASE + "file.txt", b"x")
        for uri in ("lanner:///", "lanner://", BASE, BASE + "file.txt/inside"):
            with pytest.raises(StorageError):
                storage.put(uri, b"y")
        assert storage.get(BASE + "file.txt") == b"x"

    def test_a_file_named_like_a_temporary_file_is_kept(self, storage: Storage) -> None:
        storage.put(BASE + "report.tmp", b"mine")
        storage.put(BASE + "report", b"other")
        assert storage.get(BASE + "report.tmp") == b"mine"
        assert storage.list(BASE) == [BASE + "report", BASE + "report.tmp"]

    def test_kestra_uris_name_the_same_files(self, storage: Storage) -> None:
        kestra = BASE.replace("lanner://", "kestra://", 1)
        assert storage.put(kestra + "k.txt", b"both") == kestra + "k.txt"
        assert storage.get(BASE + "k.txt") == b"both"
        assert b"".join(storage.stream(kestra + "k.txt")) == b"both"
        assert storage.exists(kestra + "k.txt") and storage.size(kestra + "k.txt") == 4
        assert storage.list(kestra) == [BASE + "k.txt"]
        assert storage.delete(kestra + "k.txt") and not storage.exists(BASE + "k.txt")

    @pytest.mark.parametrize("uri", TRAVERSALS + NOT_OURS)
    def test_uris_outside_the_storage_are_refused(self, storage: Storage, uri: str) -> None:
        for call in (
            lambda: storage.put(uri, b"x"),
            lambda: storage.get(uri),
            lambda: storage.stream(uri),
            lambda: storage.size(uri),
            lambda: storage.exists(uri),
            lambda: storage.delete(uri),
            lambda: storage.list(uri),
            lambda: storage.stat(uri),
            lambda: storage.delete_prefix(uri),
        ):
            with pytest.raises(StorageError):
                call()

    def test_stat_gives_size_content_type_and_date(self, storage: Storage) -> None:
        before = datetime.now(UTC) - timedelta(minutes=5)
        storage.put(BASE + "report.csv", b"a,b\n1,2\n")
        storage.put(BASE + "data", b"\x00" * 10, content_type="application/octet-stream")
        found = storage.stat(BASE + "report.csv")
        assert found.size == 8
        assert found.content_type == "text/csv"
        assert found.last_modified.tzinfo is not None and found.last_modified >= before
        assert storage.stat(BASE + "data").content_type == "application/octet-stream"
        for missing in (BASE + "nope", BASE):
            with pytest.raises(NotFoundError):
                storage.stat(missing)

    def test_delete_prefix_deletes_a_folder_and_nothing_else(self, storage: Storage) -> None:
        other = execution_uri("main", "company.team", "hello", "e2") + "kept.txt"
        for uri in (BASE + "a.txt", BASE + "sub/b.txt", other):
            storage.put(uri, b"x")
        assert storage.delete_prefix(BASE) == 2
        assert storage.list(BASE) == [] and not storage.exists(BASE + "sub/b.txt")
        assert storage.get(other) == b"x"
        assert storage.delete_prefix(BASE) == 0
        for whole in ("lanner:///", "lanner:////"):
            with pytest.raises(StorageError):
                storage.delete_prefix(whole)
        assert storage.get(other) == b"x"

    def test_big_file_is_streamed_both_ways(self, storage: Storage) -> None:
        uri = BASE + "big.bin"
        upload = Generated(BIG)
        tracemalloc.start()
        try:
            storage.put(uri, upload)
            _, peak_in = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            digest = hashlib.sha256()
            chunks = 0
            for chunk in storage.stream(uri):
                assert 0 < len(chunk) <= CHUNK_SIZE
                digest.update(chunk)
                chunks += 1
            _, peak_out = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert upload.left == 0
        assert digest.hexdigest() == upload.digest.hexdigest()
        assert chunks >= BIG // CHUNK_SIZE
        assert storage.size(uri) == BIG
        assert peak_in < STREAM_MEMORY, f"put held {peak_in} bytes at once"
        assert peak_out < STREAM_MEMORY, f"stream held {peak_out} bytes at once"
