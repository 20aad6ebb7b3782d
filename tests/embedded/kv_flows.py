"""Flows in Kestra's syntax for the KV store and namespace files, and the outcomes Kestra gives,
shared by the embedded test (``test_kv_namespace_flows``) and the Kafka one
(``tests/ha/test_kv_kafka``): both drive a server through the API only.

Sources of the expected outcomes (kestra-io/kestra@58c1ca2 unless said otherwise):
- ``core/src/main/java/io/kestra/plugin/core/kv/{Set,Get,GetKeys,Delete}.java`` and their
  examples; ``core/src/test/java/io/kestra/plugin/core/kv/SetTest.java`` (``typeSpecified``,
  ``shouldSetKVGivenChildNamespace``: a flow writes to its parent namespace,
  ``shouldFailGivenExistingKeyAndOverwriteFalse``), ``GetTest`` (missing: null; with
  ``errorOnMissing`` the message "No value found for key 'my-key' in namespace '...' and
  `errorOnMissing` is set to true"), ``GetKeysTest`` (prefix), ``DeleteTest`` (``deleted``);
- ``core/src/test/resources/flows/valids/kv.yaml`` and ``core/src/test/java/io/kestra/core/
  runners/pebble/functions/KvFunctionTest.java`` (``kv('my-key').field``, ``?? null``, the
  ``errorOnMissing`` argument failing the task with "The key 'my-key' does not exist in the
  namespace 'io.kestra.tests'.");
- ``core/src/main/java/io/kestra/plugin/core/namespace/{UploadFiles,DownloadFiles,
  DeleteFiles}.java`` and ``core/src/test/java/io/kestra/plugin/core/namespace/*Test.java``
  (``filesMap`` under ``destination``, ``conflict: ERROR`` fails on an existing file,
  ``DownloadFiles`` outputs ``files`` keyed by the namespace path, ``DeleteFiles`` patterns).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.infra.waiting import wait_until

NS = "company.team"
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}

KV_FLOW = f"""\
id: kv_roundtrip
namespace: {NS}
tasks:
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: my_key
    value: "{{{{ execution.id }}}}"
  - id: set_number
    type: io.kestra.plugin.core.kv.Set
    key: my_number
    value: "123.45"
    kvType: NUMBER
  - id: set_json
    type: io.kestra.plugin.core.kv.Set
    key: my_json
    value: '[{{"some":"value"}},{{"another":"value"}}]'
    kvType: JSON
    ttl: PT1H
  - id: set_parent
    type: io.kestra.plugin.core.kv.Set
    namespace: company
    key: parent_key
    value: from the parent
  - id: get
    type: io.kestra.plugin.core.kv.Get
    key: my_key
  - id: get_number
    type: io.kestra.plugin.core.kv.Get
    key: my_number
  - id: get_missing
    type: io.kestra.plugin.core.kv.Get
    key: absent
  - id: keys
    type: io.kestra.plugin.core.kv.GetKeys
    prefix: my_
  - id: fn
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{{{ kv('my_key') == execution.id }}}} {{{{ kv('my_number') + 1 }}}}
      {{{{ kv('my_json')[1].another }}}} {{{{ kv('parent_key', 'company') }}}}
      {{{{ kv('absent') ?? 'none' }}}}
  - id: delete
    type: io.kestra.plugin.core.kv.Delete
    key: my_key
  - id: delete_again
    type: io.kestra.plugin.core.kv.Delete
    key: my_key
"""

KV_FAILURES_FLOW = f"""\
id: kv_failures
namespace: {NS}
tasks:
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: taken
    value: first
  - id: no_overwrite
    type: io.kestra.plugin.core.kv.Set
    key: taken
    value: second
    overwrite: false
    allowFailure: true
  - id: get_required
    type: io.kestra.plugin.core.kv.Get
    key: my-key
    errorOnMissing: true
    allowFailure: true
  - id: delete_required
    type: io.kestra.plugin.core.kv.Delete
    key: my-key
    errorOnMissing: true
    allowFailure: true
  - id: bad_key
    type: io.kestra.plugin.core.kv.Set
    key: bad$key
    value: x
    allowFailure: true
  - id: bad_number
    type: io.kestra.plugin.core.kv.Set
    key: n
    value: not a number
    kvType: NUMBER
    allowFailure: true
  - id: still_first
    type: io.kestra.plugin.core.kv.Get
    key: taken
"""

# Kestra's own test flow, core/src/test/resources/flows/valids/kv.yaml, unchanged but its
# namespace (the test sets ``my-key`` to {{"field": "value"}} through the API first)
KESTRA_KV_FLOW = f"""\
id: kv
namespace: {NS}
inputs:
  - name: namespace
    type: STRING
    required: false
    defaults: "{NS}"
  - name: errorOnMissing
    type: BOOLEAN
    required: false
    defaults: false
tasks:
  - id: get
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ kv('my-key').field ?? null }}}}"
  - id: getWithArgs
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ kv('my-key', inputs.namespace, inputs.errorOnMissing).field }}}}"
"""

FILES_FLOW = f"""\
id: namespace_files
namespace: {NS}
tasks:
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: hello from a flow
    extension: .txt
  - id: upload
    type: io.kestra.plugin.core.namespace.UploadFiles
    namespace: "{{{{ flow.namespace }}}}"
    filesMap:
      /path/file.txt: "{{{{ outputs.write.uri }}}}"
      /path/other.txt: "{{{{ outputs.write.uri }}}}"
    destination: /folder
  - id: upload_again
    type: io.kestra.plugin.core.namespace.UploadFiles
    namespace: {NS}
    filesMap:
      /path/file.txt: "{{{{ outputs.write.uri }}}}"
    destination: /folder
    conflict: ERROR
    allowFailure: true
  - id: upload_skip
    type: io.kestra.plugin.core.namespace.UploadFiles
    namespace: {NS}
    filesMap: '{{"/path/file.txt": "{{{{ outputs.write.uri }}}}"}}'
    destination: /folder
    conflict: SKIP
  - id: download
    type: io.kestra.plugin.core.namespace.DownloadFiles
    namespace: {NS}
    files:
      - "**file.txt"
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.download.files['/folder/path/file.txt']) }}}}"
  - id: delete
    type: io.kestra.plugin.core.namespace.DeleteFiles
    namespace: {NS}
    files: "**other.txt"
"""

FLOWS = [KV_FLOW, KV_FAILURES_FLOW, KESTRA_KV_FLOW, FILES_FLOW]


TENANT_FLOW = f"""\
id: tenant_kv
namespace: {NS}
tasks:
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: tenant_only
    value: "{{{{ kv('tenant_seed') }}}} in acme"
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: acme's file
  - id: upload
    type: io.kestra.plugin.core.namespace.UploadFiles
    namespace: {NS}
    filesMap:
      tenant.txt: "{{{{ outputs.write.uri }}}}"
"""


def deploy(client: httpx.Client, sources: list[str] = FLOWS, prefix: str = "/api/v1") -> None:
    for source in sources:
        response = client.post(
            f"{prefix}/flows", content=source, headers={"content-type": "application/x-yaml"}
        )
        assert response.status_code == 200, response.text


def run(
    client: httpx.Client,
    flow_id: str,
    inputs: dict[str, str] | None = None,
    timeout: float = 90,
    prefix: str = "/api/v1",
) -> dict[str, Any]:
    """Starts an execution through the API and returns it once it ended."""
    response = client.post(f"{prefix}/executions/{NS}/{flow_id}", data=inputs or {})
    assert response.status_code == 200, response.text
    execution_id = response.json()["id"]
    found: dict[str, Any] = {}

    def ended() -> bool:
        got = client.get(f"{prefix}/executions/{execution_id}")
        if got.status_code == 404:  # not indexed yet
            return False
        got.raise_for_status()
        found.clear()
        found.update(got.json())
        return found["state"]["current"] in TERMINAL

    wait_until(ended, timeout, f"execution {execution_id} of {flow_id} to end")
    return found


def task_runs(execution: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["taskId"]: t for t in execution["taskRunList"]}


def outputs(execution: dict[str, Any]) -> dict[str, Any]:
    return {t["taskId"]: t.get("outputs") for t in execution["taskRunList"]}


def states(execution: dict[str, Any]) -> dict[str, str]:
    return {t["taskId"]: t["state"]["current"] for t in execution["taskRunList"]}


def check_kv_roundtrip(client: httpx.Client) -> None:
    execution = run(client, "kv_roundtrip")
    assert execution["state"]["current"] == "SUCCESS", states(execution)
    out = outputs(execution)
    assert out["get"] == {"value": execution["id"]}
    assert out["get_number"] == {"value": 123.45}
    assert (out["get_missing"] or {}).get("value") is None
    assert out["keys"] == {"keys": ["my_json", "my_key", "my_number"]}
    assert out["fn"] == {"value": "true 124.45 value from the parent none"}
    assert out["delete"] == {"deleted": True}
    assert out["delete_again"] == {"deleted": False}
    # what the worker wrote, the webserver reads: typed values and the TTL
    api = f"/api/v1/namespaces/{NS}/kv"
    assert client.get(f"{api}/my_number").json() == {"type": "NUMBER", "value": 123.45}
    assert client.get(f"{api}/my_json").json() == {
        "type": "JSON",
        "value": [{"some": "value"}, {"another": "value"}],
    }
    assert client.get(f"{api}/my_key").status_code == 404
    entries = {e["key"]: e for e in client.get(api).json()}
    assert entries["my_json"]["expirationDate"] is not None
    assert entries["my_number"]["expirationDate"] is None
    parent = client.get("/api/v1/namespaces/company/kv/parent_key").json()
    assert parent == {"type": "STRING", "value": "from the parent"}


def check_kv_failures(client: httpx.Client) -> None:
    execution = run(client, "kv_failures")
    assert execution["state"]["current"] == "WARNING", states(execution)
    assert states(execution) == {
        "set": "SUCCESS",
        "no_overwrite": "WARNING",
        "get_required": "WARNING",
        "delete_required": "WARNING",
        "bad_key": "WARNING",
        "bad_number": "WARNING",
        "still_first": "SUCCESS",
    }
    assert outputs(execution)["still_first"] == {"value": "first"}
    logs = client.get(f"/api/v1/logs/{execution['id']}").json()
    messages = " | ".join(entry["message"] for entry in logs)
    assert (
        "Cannot set value for key 'taken'. Key already exists and `overwrite` is set to `false`."
        in messages
    )
    assert (
        f"No value found for key 'my-key' in namespace '{NS}' and `errorOnMissing` is set to true"
        in messages
    )
    assert "Key must start with an alphanumeric character" in messages
    assert "'not a number' is not a NUMBER" in messages


def check_kestra_kv_flow(client: httpx.Client) -> None:
    """KvFunctionTest.get and getKeyNotFound."""
    api = f"/api/v1/namespaces/{NS}/kv/my-key"
    assert client.put(api, content='{"field": "value"}').status_code == 200
    execution = run(client, "kv")
    assert execution["state"]["current"] == "SUCCESS", states(execution)
    assert outputs(execution)["get"] == {"value": "value"}
    assert outputs(execution)["getWithArgs"] == {"value": "value"}

    assert client.delete(api).json() is True
    execution = run(client, "kv", {"errorOnMissing": "true"})
    runs = task_runs(execution)
    assert runs["get"]["outputs"] == {"value": ""}
    assert runs["get"]["state"]["current"] == "SUCCESS"
    assert runs["getWithArgs"]["state"]["current"] == "FAILED"
    logs = client.get(f"/api/v1/logs/{execution['id']}").json()
    assert any(
        f"The key 'my-key' does not exist in the namespace '{NS}'." in entry["message"]
        for entry in logs
    ), logs


def check_namespace_files(client: httpx.Client) -> None:
    execution = run(client, "namespace_files")
    assert execution["state"]["current"] == "WARNING", states(execution)
    assert states(execution)["upload_again"] == "WARNING"  # allowFailure: failed, tolerated
    out = outputs(execution)
    assert list(out["download"]["files"]) == ["/folder/path/file.txt"]
    assert out["download"]["files"]["/folder/path/file.txt"].startswith("lanner:///")
    assert out["read"] == {"value": "hello from a flow"}
    files = f"/api/v1/namespaces/{NS}/files"
    assert client.get(f"{files}/search", params={"q": "folder"}).json() == ["/folder/path/file.txt"]
    got = client.get(files, params={"path": "/folder/path/file.txt"})
    assert got.content == b"hello from a flow"


def check_tenant(client: httpx.Client, tenant: str = "acme") -> None:
    """A flow of another tenant reads and writes that tenant's store only."""
    prefix = f"/api/v1/{tenant}"
    deploy(client, [TENANT_FLOW], prefix)
    seed = client.put(f"{prefix}/namespaces/{NS}/kv/tenant_seed", content='"seeded"')
    assert seed.status_code == 200
    execution = run(client, "tenant_kv", prefix=prefix)
    assert execution["state"]["current"] == "SUCCESS", states(execution)
    got = client.get(f"{prefix}/namespaces/{NS}/kv/tenant_only")
    assert got.json() == {"type": "STRING", "value": "seeded in acme"}
    assert client.get(f"/api/v1/namespaces/{NS}/kv/tenant_only").status_code == 404
    assert client.get(f"/api/v1/namespaces/{NS}/kv/tenant_seed").status_code == 404
    files = f"namespaces/{NS}/files"
    assert client.get(f"{prefix}/{files}", params={"path": "/tenant.txt"}).content == (
        b"acme's file"
    )
    assert client.get(f"/api/v1/{files}", params={"path": "/tenant.txt"}).status_code == 404


CHECKS: list[Callable[[httpx.Client], None]] = [
    check_kv_roundtrip,
    check_kv_failures,
    check_kestra_kv_flow,
    check_namespace_files,
]
