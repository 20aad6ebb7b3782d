"""``kestra://`` URIs name the same internal-storage files as ``lanner://`` ones, under the same
confinement rule; ``storage_uri_scheme`` picks the scheme Lanner writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import StorageUriError
from common.settings import Settings
from common.storage.base import (
    execution_uri,
    object_key,
    scheme_of,
    with_scheme,
)
from common.storage.local import LocalStorage
from common.storage.namespace_files import file_uri


def test_both_schemes_address_the_same_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    written = storage.put("kestra:///company/team/f/executions/e1/a.txt", b"hello")
    assert written == "kestra:///company/team/f/executions/e1/a.txt"
    assert storage.get("lanner:///company/team/f/executions/e1/a.txt") == b"hello"
    assert storage.size("kestra:///company/team/f/executions/e1/a.txt") == 5
    assert storage.delete("kestra:///company/team/f/executions/e1/a.txt")
    assert not storage.exists("lanner:///company/team/f/executions/e1/a.txt")


@pytest.mark.parametrize(
    "uri",
    [
        "kestra:///company/../../etc/passwd",
        "kestra:///company/%2e%2e/secret",
        "kestra:///a\\b",
        "s3:///bucket/a",
        "kestra:/a",
    ],
)
def test_kestra_uris_are_confined_like_ours(uri: str) -> None:
    with pytest.raises(StorageUriError):
        object_key(uri)


def test_the_setting_picks_the_scheme_written() -> None:
    assert Settings().storage_uri_scheme == "lanner"
    scheme = scheme_of(Settings(storage_uri_scheme="kestra").storage_uri_scheme)
    assert execution_uri("main", "io.kestra.tests", "f", "e1", scheme) == (
        "kestra:///main/io/kestra/tests/f/executions/e1/"
    )
    assert with_scheme("kestra:///a/b") == "lanner:///a/b"
    assert file_uri("main", "my.namespace", "test", scheme) == (
        "kestra:///main/my/namespace/_files/test"
    )
    with pytest.raises(StorageUriError, match=r"Path must not contain '\.\./'"):
        file_uri("main", "my.namespace", "../test")


def test_the_environment_variable_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANNER_STORAGE_URI_SCHEME", "kestra")
    assert Settings().storage_uri_scheme == "kestra"


def test_file_trigger_folders_accept_kestra_uris() -> None:
    from common.plugins.core.storage import _namespace_folder

    assert _namespace_folder("main", "company.team", "kestra:///main/company/team/inbox") == (
        "lanner:///main/company/team/inbox/"
    )
    with pytest.raises(ValueError, match="outside the namespace"):
        _namespace_folder("main", "company.team", "kestra:///main/other/inbox")


def test_file_trigger_folders_are_the_tenants() -> None:
    """Tenant first, as execution files (issue 13): another tenant's folder, or the tenant-less
    one of the same namespace, is outside the trigger's folder."""
    from common.plugins.core.storage import _namespace_folder

    assert _namespace_folder("acme", "company.team", "inbox") == (
        "lanner:///acme/company/team/inbox/"
    )
    for foreign in ("lanner:///main/company/team/inbox", "lanner:///company/team/inbox"):
        with pytest.raises(ValueError, match="outside the namespace"):
            _namespace_folder("acme", "company.team", foreign)
