"""Kestra-syntax flows for the row, history and file-function plugins, run through the API of a
live server (embedded or Kafka + Elasticsearch), with the outcomes Kestra's tests assert.

Kestra sources read (github.com/kestra-io/kestra, commit 58c1ca2d, December 2024):
``core/src/main/java/io/kestra/plugin/core/{storage/Reverse,storage/DeduplicateItems,
storage/FilterItems,execution/Count,execution/PurgeExecutions,log/Fetch,log/PurgeLogs}.java``,
``core/src/main/java/io/kestra/core/runners/pebble/functions/{ReadFileFunction,
FileURIFunction}.java`` and their tests (named in each check's docstring); Kestra's plugin
pages (https://kestra.io/plugins/io.kestra.plugin.core.execution.PurgeExecutions,
https://kestra.io/plugins/io.kestra.plugin.core.log.PurgeLogs,
https://kestra.io/plugins/core/tasks/storage/io.kestra.plugin.core.storage.FilterItems) and
https://kestra.io/docs/administrator-guide/purge. Each check takes a namespace of its own, so
the scenarios share one server without seeing each other's data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.infra.waiting import wait_until

Json = dict[str, Any]
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}
DEADLINE = 90.0  # generous: the machine is shared


class Api:
    """The calls a user's script makes: deploy, run and wait, read logs and files."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def deploy(self, source: str) -> None:
        response = self.client.post(
            "/api/v1/flows", content=source, headers={"content-type": "application/x-yaml"}
        )
        assert response.status_code == 200, response.text

    def start(self, namespace: str, flow_id: str, inputs: dict[str, str] | None = None) -> str:
        files = {k: (None, v) for k, v in (inputs or {}).items()}
        response = self.client.post(f"/api/v1/executions/{namespace}/{flow_id}", files=files)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def execution(self, execution_id: str) -> Json | None:
        response = self.client.get(f"/api/v1/executions/{execution_id}")
        return response.json() if response.status_code == 200 else None

    def ended(self, execution_id: str) -> Json:
        def terminal() -> Json | None:
            found = self.execution(execution_id)
            return found if found and found["state"]["current"] in TERMINAL else None

        ended = wait_until(terminal, DEADLINE, f"execution {execution_id} to end")
        assert ended is not None
        return ended

    def run(self, namespace: str, flow_id: str, inputs: dict[str, str] | None = None) -> Json:
        return self.ended(self.start(namespace, flow_id, inputs))

    def logs(self, execution_id: str) -> list[Json]:
        response = self.client.get(f"/api/v1/logs/{execution_id}")
        assert response.status_code == 200, response.text
        return list(response.json())

    def wait_logs(self, execution_id: str, count: int) -> None:
        """The indexer copied ``count`` log lines of the execution to the repository."""
        wait_until(
            lambda: len(self.logs(execution_id)) == count,
            DEADLINE,
            f"{count} logs of {execution_id} in the repository",
        )

    def wait_searchable(self, namespace: str, flow_id: str, ids: list[str]) -> None:
        """The executions ``ids`` are found by a search (and so by the history tasks), ended:
        on Elasticsearch a GET answers before the index refreshes for searches."""

        def found() -> bool:
            response = self.client.get(
                "/api/v1/executions/search",
                params={"namespace": namespace, "flowId": flow_id, "size": 100},
            )
            assert response.status_code == 200, response.text
            ended = {
                r["id"] for r in response.json()["results"] if r["state"]["current"] in TERMINAL
            }
            return set(ids) <= ended

        wait_until(found, DEADLINE, f"executions of {namespace}.{flow_id} in searches")

    def file(self, execution_id: str, uri: str) -> str:
        response = self.client.get(f"/api/v1/executions/{execution_id}/file", params={"path": uri})
        assert response.status_code == 200, response.text
        return response.text


def outputs(execution: Json, task_id: str) -> Json:
    runs = [r for r in execution["taskRunList"] if r["taskId"] == task_id]
    assert runs, f"no task run {task_id} in {[r['taskId'] for r in execution['taskRunList']]}"
    return dict(runs[0].get("outputs") or {})


def failed(execution: Json, task_id: str) -> bool:
    """The task run failed (``allowFailure`` then turns it to WARNING, Kestra's rule)."""
    run = next(r for r in execution["taskRunList"] if r["taskId"] == task_id)
    return "FAILED" in [h["state"] for h in run["state"]["histories"]]


def rows(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line]


def _jsonl(items: list[dict[str, Any]]) -> str:
    """A row file's content as a YAML block scalar (indented for ``content: |``)."""
    return "\n".join("      " + json.dumps(item) for item in items)


# ---------------------------------------------------------------- storage row tasks

KV1: list[Json] = [
    {"key": "k1", "value": "v1"},
    {"key": "k2", "value": "v1"},
    {"key": "k3", "value": "v1"},
    {"key": "k1", "value": "v2"},
    {"key": "k2", "value": "v2"},
    {"key": "k2", "value": None},
    {"key": "k3", "value": "v2"},
    {"key": "k1", "value": "v3"},
]
KV2: list[Json] = [
    {"key": "k1", "v1": "k1", "v2": "v1"},
    {"key": "k2", "v1": "k2", "v2": "v1"},
    {"key": "k3", "v1": "k3", "v2": "v1"},
    {"key": "k1", "v1": "k1", "v2": "v2"},
    {"key": "k2", "v1": "k2", "v2": None},
    {"key": "k3", "v1": "k3", "v2": "v2"},
    {"key": "k1", "v1": "k1", "v2": "v3"},
]
VALID: list[Json] = [{"key": f"k{i}", "value": i} for i in range(1, 5)]
INVALID: list[Json] = [{"key": "k1", "value": 1}, {"key": "k2", "value": "dummy"}, *VALID[2:]]


def check_reverse(api: Api, namespace: str) -> None:
    """``Reverse`` of "1\\n2\\n3\\n" is "3\\n2\\n1\\n" and keeps the extension (Kestra's
    ``ReverseTest.run``)."""
    api.deploy(f"""\
id: reverse
namespace: {namespace}
tasks:
  - id: write
    type: io.kestra.plugin.core.storage.Write
    extension: .yml
    content: |
      1
      2
      3
  - id: reverse
    type: io.kestra.plugin.core.storage.Reverse
    from: "{{{{ outputs.write.uri }}}}"
""")
    execution = api.run(namespace, "reverse")
    assert execution["state"]["current"] == "SUCCESS", execution
    uri = outputs(execution, "reverse")["uri"]
    assert uri.endswith(".yml")
    assert api.file(execution["id"], uri) == "3\n2\n1\n"


def check_deduplicate(api: Api, namespace: str) -> None:
    """``DeduplicateItems`` keeps each key's last item where it stands (Kestra's
    ``DeduplicateItemsTest``: 3 keys, 5 of 8 dropped; with ``{{ key }}-{{ v1 }}`` 3 keys, 4 of
    7 dropped)."""
    api.deploy(f"""\
id: deduplicate
namespace: {namespace}
tasks:
  - id: kv1
    type: io.kestra.plugin.core.storage.Write
    content: |
{_jsonl(KV1)}
  - id: kv2
    type: io.kestra.plugin.core.storage.Write
    content: |
{_jsonl(KV2)}
  - id: by_key
    type: io.kestra.plugin.core.storage.DeduplicateItems
    from: "{{{{ outputs.kv1.uri }}}}"
    expr: " {{{{ key }}}} "
  - id: by_array
    type: io.kestra.core.tasks.storages.DeduplicateItems
    from: "{{{{ outputs.kv2.uri }}}}"
    expr: " {{{{ key }}}}-{{{{ v1 }}}}"
""")
    execution = api.run(namespace, "deduplicate")
    assert execution["state"]["current"] == "SUCCESS", execution
    by_key = outputs(execution, "by_key")
    assert (by_key["numKeys"], by_key["droppedItemsTotal"], by_key["processedItemsTotal"]) == (
        3,
        5,
        8,
    )
    assert rows(api.file(execution["id"], by_key["uri"])) == [KV1[5], KV1[6], KV1[7]]
    by_array = outputs(execution, "by_array")
    assert (by_array["numKeys"], by_array["droppedItemsTotal"]) == (3, 4)
    assert by_array["processedItemsTotal"] == 7
    assert rows(api.file(execution["id"], by_array["uri"])) == [KV2[4], KV2[5], KV2[6]]


def check_filter(api: Api, namespace: str) -> None:
    """``FilterItems`` (Kestra's ``FilterItemsTest``): INCLUDE / EXCLUDE of even values; an
    item whose condition fails is kept, dropped, or fails the task (errorOrNullBehavior
    INCLUDE / EXCLUDE / FAIL); a non-boolean value (``{{ value }}``) is truthy."""

    def task(task_id: str, source: str, condition: str, **options: str) -> str:
        extra = "".join(f"\n    {k}: {v}" for k, v in options.items())
        return f"""
  - id: {task_id}
    type: io.kestra.plugin.core.storage.FilterItems
    from: "{{{{ outputs.{source}.uri }}}}"
    filterCondition: "{condition}"{extra}"""

    even = " {{ value % 2 == 0 }} "
    api.deploy(f"""\
id: filter
namespace: {namespace}
tasks:
  - id: valid
    type: io.kestra.plugin.core.storage.Write
    content: |
{_jsonl(VALID)}
  - id: invalid
    type: io.kestra.plugin.core.storage.Write
    content: |
{_jsonl(INVALID)}{task("include", "valid", even, filterType="INCLUDE")}{
        task("exclude", "valid", even, filterType="EXCLUDE")
    }{task("error_include", "invalid", even, errorOrNullBehavior="INCLUDE")}{
        task("error_exclude", "invalid", even, errorOrNullBehavior="EXCLUDE")
    }{task("not_boolean", "valid", "{{ value }}", errorOrNullBehavior="FAIL")}{
        task("error_fail", "invalid", even, errorOrNullBehavior="FAIL", allowFailure="true")
    }
""")
    execution = api.run(namespace, "filter")
    assert execution["state"]["current"] == "WARNING", execution  # error_fail failed, allowed
    assert failed(execution, "error_fail")

    def check(task_id: str, dropped: int, kept: list[Json]) -> None:
        found = outputs(execution, task_id)
        assert (found["droppedItemsTotal"], found["processedItemsTotal"]) == (dropped, 4)
        assert rows(api.file(execution["id"], found["uri"])) == kept, task_id

    check("include", 2, [VALID[1], VALID[3]])
    check("exclude", 2, [VALID[0], VALID[2]])
    check("error_include", 2, [INVALID[1], INVALID[3]])
    check("error_exclude", 3, [INVALID[3]])
    check("not_boolean", 0, VALID)


# ---------------------------------------------------------------- read() and fileURI()


def check_read_and_file_uri(api: Api, namespace: str, scheme: str) -> None:
    """``fileURI(path)`` is ``kestra:///<namespace as folders>/_files/<path>`` and refuses
    ``../`` (Kestra's ``FileURIFunctionTest``; Lanner puts the tenant first, where its namespace
    files are stored); ``read()`` reads a namespace file by its path
    (``ReadFileFunctionTest.readNamespaceFile``), by its ``fileURI()``, and an internal-storage
    URI in either scheme (``readInternalStorageURI``); the file API serves a file by either
    scheme. ``scheme`` is the one the server writes (``storage_uri_scheme``)."""
    uploaded = api.client.post(
        f"/api/v1/namespaces/{namespace}/files",
        params={"path": "/file.txt"},
        files={"fileContent": ("file.txt", b"Hello from {{ flow.namespace }}", "text/plain")},
    )
    assert uploaded.status_code == 200, uploaded.text
    api.deploy(f"""\
id: functions
namespace: {namespace}
tasks:
  - id: write
    type: io.kestra.plugin.core.storage.Write
    content: Hello from a task output
  - id: uri
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ fileURI('test') }}}}"
  - id: namespace_file
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ render(read('file.txt')) }}}}"
  - id: by_file_uri
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(fileURI('file.txt')) }}}}"
  - id: read_output
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.write.uri) }}}}"
  - id: read_kestra
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.write.uri | replace({{'lanner://': 'kestra://'}})) }}}}"
  - id: read_lanner
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(outputs.write.uri | replace({{'kestra://': 'lanner://'}})) }}}}"
  - id: traversal
    type: io.kestra.plugin.core.debug.Return
    allowFailure: true
    format: "{{{{ fileURI('../test') }}}}"
""")
    execution = api.run(namespace, "functions")
    assert execution["state"]["current"] == "WARNING", execution
    assert failed(execution, "traversal")
    folders = namespace.replace(".", "/")
    assert outputs(execution, "uri")["value"] == f"{scheme}:///main/{folders}/_files/test"
    assert outputs(execution, "namespace_file")["value"] == f"Hello from {namespace}"
    assert outputs(execution, "by_file_uri")["value"] == "Hello from {{ flow.namespace }}"
    uri = outputs(execution, "write")["uri"]
    assert uri.startswith(f"{scheme}:///main/{folders}/functions/executions/{execution['id']}/")
    for task_id in ("read_output", "read_kestra", "read_lanner"):
        assert outputs(execution, task_id)["value"] == "Hello from a task output", task_id
    path = uri.split("://", 1)[1]
    for other in ("kestra", "lanner"):
        assert api.file(execution["id"], f"{other}://{path}") == "Hello from a task output"
    wait_until(
        lambda: any(
            "Path must not contain '../'" in x["message"] for x in api.logs(execution["id"])
        ),
        DEADLINE,
        "the traversal's error in the logs",
    )


# ---------------------------------------------------------------- history: count, fetch, purge


def _flow(namespace: str, flow_id: str, tasks: str, inputs: str = "") -> str:
    return f"id: {flow_id}\nnamespace: {namespace}\n{inputs}tasks:\n{tasks}"


LOG_TASKS = """\
  - id: t1
    type: io.kestra.plugin.core.log.Log
    message: first
  - id: t2
    type: io.kestra.plugin.core.log.Log
    level: WARN
    message: second
  - id: t3
    type: io.kestra.plugin.core.log.Log
    level: DEBUG
    message: third
  - id: t4
    type: io.kestra.plugin.core.log.Log
    message: fourth
"""


def check_count(api: Api, namespace: str) -> None:
    """``Count`` (Kestra's ``Count.java`` and ``AbstractExecutionRepositoryTest.executionsCount``):
    one row per listed flow, 0 for a flow without executions; ``expression`` (with ``count``)
    selects rows; per namespace, one row with the namespace's total; ``total`` sums the rows."""
    counted = f"{namespace}.counted"
    for flow_id in ("first", "second"):
        api.deploy(
            _flow(
                counted,
                flow_id,
                "  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n",
            )
        )
    ids = [api.start(counted, "first"), *(api.start(counted, "second") for _ in range(2))]
    for execution_id in ids:
        assert api.ended(execution_id)["state"]["current"] == "SUCCESS"
    api.wait_searchable(counted, "first", ids[:1])
    api.wait_searchable(counted, "second", ids[1:])
    api.deploy(
        _flow(
            namespace,
            "count",
            f"""\
  - id: zero
    type: io.kestra.plugin.core.execution.Count
    expression: "{{{{ count == 0 }}}}"
    startDate: "{{{{ now() | dateAdd(-1, 'DAYS') }}}}"
    flows:
      - namespace: {counted}
        flowId: first
      - namespace: {counted}
        flowId: missing
  - id: some
    type: io.kestra.core.tasks.executions.Counts
    expression: "{{{{ count > 0 }}}}"
    startDate: "{{{{ now() | dateAdd(-1, 'DAYS') }}}}"
    endDate: "{{{{ now() | dateAdd(1, 'MINUTES') }}}}"
    states: [SUCCESS]
    flows:
      - namespace: {counted}
        flowId: first
      - namespace: {counted}
        flowId: second
      - namespace: {counted}
        flowId: missing
  - id: namespaces
    type: io.kestra.plugin.core.execution.Count
    expression: "{{{{ count >= 0 }}}}"
    startDate: "{{{{ now() | dateAdd(-1, 'DAYS') }}}}"
    namespaces: [{counted}]
  - id: failed_only
    type: io.kestra.plugin.core.execution.Count
    expression: "{{{{ count == 0 }}}}"
    startDate: "{{{{ now() | dateAdd(-1, 'DAYS') }}}}"
    states: [FAILED]
    namespaces: [{counted}]
""",
        )
    )
    execution = api.run(namespace, "count")
    assert execution["state"]["current"] == "SUCCESS", execution
    assert outputs(execution, "zero") == {
        "results": [{"namespace": counted, "flowId": "missing", "count": 0}],
        "total": 0,
    }
    some = outputs(execution, "some")
    assert [(r["flowId"], r["count"]) for r in some["results"]] == [("first", 1), ("second", 2)]
    assert some["total"] == 3
    assert outputs(execution, "namespaces") == {
        "results": [{"namespace": counted, "flowId": None, "count": 3}],
        "total": 3,
    }
    assert outputs(execution, "failed_only")["total"] == 0
    assert len(outputs(execution, "failed_only")["results"]) == 1


def check_fetch_and_purge_logs(api: Api, namespace: str) -> None:
    """``Fetch`` writes an execution's logs at ``level`` or above, of ``tasksId`` if given, one
    per row, and outputs their number as ``size`` (Kestra's ``FetchTest``: 3 rows, 1 with
    ``tasksId``); ``PurgeLogs`` deletes the logs of a namespace at ``logLevels``, then all, and
    outputs ``count`` (``PurgeLogsTest``)."""
    logged = f"{namespace}.logged"
    api.deploy(_flow(logged, "logs", LOG_TASKS))
    source = api.run(logged, "logs")
    assert source["state"]["current"] == "SUCCESS", source
    api.wait_logs(source["id"], 4)
    api.deploy(
        _flow(
            namespace,
            "fetch",
            f"""\
  - id: all
    type: io.kestra.plugin.core.log.Fetch
    executionId: "{{{{ inputs.source }}}}"
    namespace: {logged}
    flowId: logs
  - id: one_task
    type: io.kestra.core.tasks.log.Fetch
    executionId: "{{{{ inputs.source }}}}"
    namespace: {logged}
    flowId: logs
    tasksId:
      - t1
  - id: warnings
    type: io.kestra.plugin.core.log.Fetch
    executionId: "{{{{ inputs.source }}}}"
    namespace: {logged}
    flowId: logs
    level: WARN
  - id: purge_warnings
    type: io.kestra.plugin.core.log.PurgeLogs
    namespace: {logged}
    logLevels: [WARN, ERROR]
    endDate: "{{{{ now() | dateAdd(1, 'MINUTES') }}}}"
  - id: purge_rest
    type: io.kestra.plugin.core.log.PurgeLogs
    namespace: {logged}
    flowId: logs
    startDate: "{{{{ now() | dateAdd(-1, 'DAYS') }}}}"
    endDate: "{{{{ now() | dateAdd(1, 'MINUTES') }}}}"
""",
            inputs="inputs:\n  - id: source\n    type: STRING\n",
        )
    )
    execution = api.run(namespace, "fetch", {"source": source["id"]})
    assert execution["state"]["current"] == "SUCCESS", execution
    fetched = outputs(execution, "all")
    assert fetched["size"] == 3
    lines = rows(api.file(execution["id"], fetched["uri"]))
    assert [(r["taskId"], r["level"], r["message"]) for r in lines] == [
        ("t1", "INFO", "first"),
        ("t2", "WARN", "second"),
        ("t4", "INFO", "fourth"),
    ]
    assert all(r["executionId"] == source["id"] for r in lines)
    assert outputs(execution, "one_task")["size"] == 1
    assert outputs(execution, "warnings")["size"] == 1
    assert outputs(execution, "purge_warnings") == {"count": 1}
    assert outputs(execution, "purge_rest") == {"count": 3}
    assert api.logs(source["id"]) == []


def check_purge_executions(api: Api, namespace: str) -> None:
    """``PurgeExecutions`` deletes the matching executions with their logs and files, and
    outputs ``executionsCount``, ``logsCount``, ``storagesCount``, ``metricsCount`` (Kestra's
    ``PurgeExecutions.java``, ``ExecutionService.purge`` and ``PurgeExecutionsTest.run``:
    ``executionsCount`` 1 for one execution); ``purgeExecution: false`` keeps executions;
    ``batchSize`` (Kestra 0.21+, https://kestra.io/plugins/io.kestra.plugin.core.execution.
    PurgeExecutions) is how many are read at a time."""
    purged = f"{namespace}.purged"
    api.deploy(
        _flow(
            purged,
            "old",
            """\
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: to purge
  - id: file
    type: io.kestra.plugin.core.storage.Write
    content: to purge
""",
        )
    )
    ids = [api.start(purged, "old") for _ in range(2)]
    for execution_id in ids:
        assert api.ended(execution_id)["state"]["current"] == "SUCCESS"
        api.wait_logs(execution_id, 1)
    api.wait_searchable(purged, "old", ids)
    purge = """\
  - id: purge
    type: io.kestra.plugin.core.execution.PurgeExecutions
    namespace: {ns}
    flowId: old
    states: [SUCCESS]
    endDate: "{{{{ now() | dateAdd(1, 'MINUTES') }}}}"{extra}
"""
    api.deploy(
        _flow(
            namespace,
            "keep",
            purge.format(ns=purged, extra="\n    purgeExecution: false\n    purgeStorage: false"),
        )
    )
    kept = api.run(namespace, "keep")
    assert kept["state"]["current"] == "SUCCESS", kept
    found = outputs(kept, "purge")
    assert found == {
        "executionsCount": 0,
        "logsCount": 2,
        "storagesCount": 0,
        "metricsCount": 0,
    }, found
    assert all(api.execution(i) is not None for i in ids)
    # one execution a page: the second page follows the first one's cursor after its deletion
    api.deploy(_flow(namespace, "purge", purge.format(ns=purged, extra="\n    batchSize: 1")))
    execution = api.run(namespace, "purge")
    assert execution["state"]["current"] == "SUCCESS", execution
    found = outputs(execution, "purge")
    assert found == {
        "executionsCount": 2,
        "logsCount": 0,
        "storagesCount": 2,
        "metricsCount": 0,
    }, found
    assert all(api.execution(i) is None for i in ids)


ROWS: list[Callable[[Api, str], None]] = [check_reverse, check_deduplicate, check_filter]
HISTORY: list[Callable[[Api, str], None]] = [
    check_count,
    check_fetch_and_purge_logs,
    check_purge_executions,
]
