"""Which URIs a task of a tenant may touch (``common.storage.base.tenant_confinement``): its
tenant's part of the storage, the tenant-less folder of its own execution, and for ``main`` only
the tenant-less folders of its namespace (files written before the tenant was in the path)."""

from __future__ import annotations

import pytest

from common.errors import StorageUriError
from common.storage.base import ForeignStorageUriError, tenant_confinement


def test_a_task_uses_its_tenant_files_and_its_own_legacy_execution_folder() -> None:
    check = tenant_confinement("acme", "company.team", "flow", "e1")
    for uri in (
        "lanner:///acme/company/team/other/executions/e9/tasks/t/r/a.txt",
        "kestra:///acme/company/team/_kv/key.ion",
        "lanner:///company/team/flow/executions/e1/tasks/t/r/old.txt",  # its own, from before
    ):
        assert check(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "lanner:///main/company/team/flow/executions/e2/tasks/t/r/a.txt",
        "kestra:///main/company/team/_kv/key.ion",
        "lanner:///acmeish/company/team/flow/executions/e2/a.txt",  # a tenant named alike
        "lanner:///company/team/flow/executions/e2/tasks/t/r/old.txt",  # another execution, legacy
        "lanner:///company/team/inbox/a.txt",  # tenant-less namespace folders: main's only
    ],
)
def test_another_tenants_uri_is_refused_naming_it(uri: str) -> None:
    check = tenant_confinement("acme", "company.team", "flow", "e1")
    with pytest.raises(ForeignStorageUriError, match="belongs to another tenant") as raised:
        check(uri)
    assert uri in str(raised.value)


def test_main_keeps_the_tenant_less_folders_of_its_namespace() -> None:
    check = tenant_confinement("main", "company.team", "flow", "e1")
    assert check("lanner:///company/team/flow/executions/e0/a.txt")
    assert check("lanner:///company/team/inbox/a.txt")  # FileTrigger's folders
    with pytest.raises(ForeignStorageUriError):
        check("lanner:///acme/company/team/flow/executions/e0/a.txt")
    with pytest.raises(ForeignStorageUriError):
        check("lanner:///other/ns/flow/executions/e0/a.txt")


def test_traversal_is_refused_before_the_tenant_is_checked() -> None:
    check = tenant_confinement("acme", "company.team", "flow", "e1")
    with pytest.raises(StorageUriError, match="outside"):
        check("lanner:///acme/../main/company/team/a.txt")
