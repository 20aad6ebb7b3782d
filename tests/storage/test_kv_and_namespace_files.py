"""The KV store and namespace files on both storage backends (local folder, GCS emulator).

Outcomes from Kestra's tests (kestra-io/kestra@58c1ca2): ``core/src/test/java/io/kestra/core/
storages/kv/InternalKVStoreTest.java``-like behaviour as asserted by ``plugin/core/kv/SetTest``
(``typeSpecified``: NUMBER 123.45, BOOLEAN true, DATETIME, DURATION, JSON list;
``shouldSetKVGivenTTL``: expiration about now + ttl; ``shouldFailGivenExistingKeyAndOverwriteFalse``
with Kestra's message), ``KVStore.validateKey`` (Kestra's key pattern), expired entries never
listed and read as missing (``InternalKVStore.list``; kestra-io/kestra#12294 for reads), and
``plugin/core/namespace/*Test`` / ``utils/PathMatcherPredicate`` for path patterns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from common.errors import ConflictError, InputValidationError
from common.storage.base import Storage
from common.storage.kv import EXPIRED, KVConflict, KVStore, TypedValue, convert
from common.storage.local import LocalStorage
from common.storage.namespace_files import NamespaceFiles, path_matcher


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.infra.gcs import GcsEmulator

    started = GcsEmulator(tmp_path_factory.mktemp("gcs")).start()
    yield started
    started.stop()


@pytest.fixture(params=["local", "gcs"])
def storage(
    request: pytest.FixtureRequest, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path)  # type: ignore[arg-type]
    from common.storage.gcs import EMULATOR_ENV, GcsStorage, gcs_client
    from tests.infra.gcs import BUCKET

    emulator = request.getfixturevalue("emulator")
    monkeypatch.setenv(EMULATOR_ENV, emulator.host)  # type: ignore[attr-defined]
    return GcsStorage(BUCKET, f"tests/{uuid.uuid4().hex}", client=gcs_client())


def test_typed_values_round_trip(storage: Storage) -> None:
    kv = KVStore(storage, "main", "io.kestra.tests")
    values = {
        "number": convert("123.45", "NUMBER"),
        "boolean": convert("true", "BOOLEAN"),
        "datetime": convert("2023-05-02T01:02:03Z", "DATETIME"),
        "date": convert("2023-05-02", "DATE"),
        "duration": convert("P1DT5S", "DURATION"),
        "json": convert('[{"some":"value"},{"another":"value"}]', "JSON"),
        "string": "test-value",
        "map": {"date": "2024-01-01T00:00:00Z", "int": 1, "string": "string"},
    }
    for key, value in values.items():
        kv.put(key, value)
    assert kv.get_value("number") == TypedValue("NUMBER", 123.45)
    assert kv.get_value("boolean") == TypedValue("BOOLEAN", True)
    assert kv.get_value("datetime") == TypedValue("DATETIME", "2023-05-02T01:02:03Z")
    assert kv.get_value("date") == TypedValue("DATE", "2023-05-02")
    assert kv.get_value("duration") == TypedValue("DURATION", "PT24H5S")
    assert kv.get_value("json") == TypedValue("JSON", [{"some": "value"}, {"another": "value"}])
    assert kv.get_value("string") == TypedValue("STRING", "test-value")
    assert kv.get_value("map") == TypedValue("JSON", values["map"])
    assert [e.key for e in kv.list()] == sorted(values)
    assert kv.get_value("absent") is None


def test_ttl_overwrite_and_delete(storage: Storage) -> None:
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    kv = KVStore(storage, "main", "company.team", now=lambda: clock[0])
    kv.put("ttl", "v", ttl=timedelta(minutes=5))
    (entry,) = kv.list()
    assert entry.expiration_date == clock[0] + timedelta(minutes=5)
    with pytest.raises(KVConflict, match="Key already exists and `overwrite` is set to `false`"):
        kv.put("ttl", "other", overwrite=False)
    clock[0] += timedelta(minutes=6)
    assert kv.list() == []
    assert kv.value("ttl", "default") == "default"  # expired reads as missing...
    kv.put("ttl2", "v", ttl=timedelta(minutes=1))
    clock[0] += timedelta(minutes=2)
    assert kv.get_value("ttl2") is EXPIRED  # ...the API sees it once (410), then it is gone
    assert kv.get_value("ttl2") is None
    kv.put("ttl", "again", overwrite=False)  # an expired key no longer blocks
    assert kv.delete("ttl") is True
    assert kv.delete("ttl") is False


def test_keys_namespaces_and_tenants(storage: Storage) -> None:
    with pytest.raises(InputValidationError, match="Key must start with an alphanumeric"):
        KVStore(storage, "main", "ns").put("bad$key", 1)
    with pytest.raises(InputValidationError, match="namespace"):
        KVStore(storage, "main", "../etc")
    KVStore(storage, "main", "ns").put("k", "main")
    KVStore(storage, "other", "ns").put("k", "other")
    KVStore(storage, "main", "ns.child").put("k", "child")
    assert KVStore(storage, "main", "ns").value("k") == "main"
    assert KVStore(storage, "other", "ns").value("k") == "other"
    assert [e.key for e in KVStore(storage, "main", "ns").list()] == ["k"]  # not the child's


def test_namespace_files(storage: Storage) -> None:
    files = NamespaceFiles(storage, "main", "io.kestra.tests")
    files.put("/a/b/test1.txt", b"1")
    files.put("/a/b/test2.txt", b"2")
    assert files.all() == ["/a/b/test1.txt", "/a/b/test2.txt"]
    # DownloadFilesTest / DeleteFilesTest patterns
    assert files.matching(["**test1.txt"]) == ["/a/b/test1.txt"]
    assert files.matching(["**test1*"]) == ["/a/b/test1.txt"]
    with pytest.raises(ConflictError, match="conflict is set to ERROR"):
        files.put("/a/b/test1.txt", b"x", "ERROR")
    assert files.put("/a/b/test1.txt", b"x", "SKIP") is None
    assert files.get("/a/b/test1.txt") == b"1"
    files.put("/a/b/test1.txt", b"new")
    assert files.get("/a/b/test1.txt") == b"new"
    files.create_directory("/empty")
    assert [(e.file_name, e.type) for e in files.list_directory("/")] == [
        ("a", "Directory"),
        ("empty", "Directory"),
    ]
    files.move("/a", "/z")
    assert files.all() == ["/z/b/test1.txt", "/z/b/test2.txt"]
    assert files.delete("/z") is True
    assert files.all() == []
    assert NamespaceFiles(storage, "other", "io.kestra.tests").all() == []


def test_path_patterns_follow_kestras_path_matcher() -> None:
    def matches(pattern: str, path: str) -> bool:
        return path_matcher([pattern]).fullmatch(path) is not None

    assert matches("test1.txt", "/a/b/test1.txt")  # bare pattern: at any depth
    assert matches("test1.txt", "/test1.txt")
    assert matches("/a/*.txt", "/a/x.txt") and not matches("/a/*.txt", "/a/b/x.txt")
    assert matches("/a/**.txt", "/a/b/x.txt")
    assert matches("glob:**application**", "/dir/application-test.yml")
    assert matches("regex:/a/.*\\.py", "/a/b/c.py")
    assert matches("**.{py,sh}", "/x/run.sh") and not matches("**.{py,sh}", "/x/run.txt")
    assert matches("/f?le[0-9].txt", "/file1.txt") and not matches("/f?le[!0-9].txt", "/file1.txt")
