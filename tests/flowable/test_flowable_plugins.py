"""WorkingDirectory, ForEachItem, LoopUntil and Exit end to end, on both backends.

``embedded`` is ``lanner server local``; ``kafka`` is ``lanner server standalone`` on a real
Kafka broker (the Faust executor, a worker and the webserver with its indexer, all on Kafka).
Flows are written in Kestra's syntax and driven through the API; what each test asserts is
what Kestra documents (kestra.io/plugins/core/flow/io.kestra.plugin.core.flow.<Name>) and what
its own tests assert (kestra-io/kestra ``core/src/test/java/io/kestra/plugin/core/...``, flows in
``core/src/test/resources/flows/valids/``), cited on each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from common.storage.local import LocalStorage
from tests.conformance.runner import Api
from tests.infra.deployment import KafkaDeployment
from tests.infra.processes import free_ports, http_ok, start_lanner

pytestmark = pytest.mark.timeout(600)
NS = "lanner.flowable"
WAIT = 120.0


@dataclass
class Server:
    api: Api
    storage: LocalStorage
    backend: str

    def deploy(self, source: str) -> None:
        self.api.deploy(source)

    def run(self, flow_id: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        created = self.api.create(NS, flow_id, inputs)
        return self.api.wait_terminal(created["id"], WAIT)

    def children(self, flow_id: str, parent_id: str, count: int) -> list[dict[str, Any]]:
        """The ended executions of ``flow_id`` that ``parent_id`` started, once ``count``."""
        found: list[dict[str, Any]] = []

        def ended() -> bool:
            found[:] = [
                ex
                for ex in self.api.search(NS, flow_id)
                if (ex.get("trigger") or {}).get("variables", {}).get("executionId") == parent_id
                and ex["state"]["current"] in ("SUCCESS", "FAILED", "WARNING", "KILLED")
            ]
            return len(found) >= count

        from tests.infra.waiting import wait_until

        wait_until(ended, WAIT, f"{count} executions of {flow_id}", interval=0.2)
        return found

    def read(self, uri: str) -> str:
        return self.storage.get(uri.replace("kestra://", "lanner://", 1)).decode()


@pytest.fixture(scope="module", params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    base = tmp_path_factory.mktemp(f"flowable-{request.param}")
    storage = LocalStorage(base / "data" / "storage")
    if request.param == "kafka":
        servers = request.getfixturevalue("kafka_bootstrap_servers")
        deployment = KafkaDeployment(servers, f"flowable-{base.name}.", base)
        try:
            deployment.init_topics()  # then every component in one process: the Faust
            # executor, a worker and the webserver, all on Kafka (starts and stops faster)
            web = deployment.start_component(
                "standalone", "standalone", "--port", str(deployment.port)
            )
            web.wait_for(lambda: http_ok(deployment.url + "/health/ready"), 120, "ready")
            with httpx.Client(base_url=deployment.url, timeout=30) as client:
                yield Server(Api(client), storage, "kafka")
        finally:
            deployment.stop()
        return
    (port,) = free_ports(1)
    process = start_lanner(
        ["server", "local", "--data-dir", str(base / "data"), "--port", str(port)],
        base / "server.log",
        cwd=base,
        name="lanner server local (flowable)",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for(lambda: http_ok(url + "/health/ready"), 60, "ready")
        with httpx.Client(base_url=url, timeout=30) as client:
            yield Server(Api(client), storage, "embedded")
    finally:
        process.stop()


def runs(ex: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    return [tr for tr in ex.get("taskRunList") or [] if tr["taskId"] == task_id]


def one(ex: dict[str, Any], task_id: str) -> dict[str, Any]:
    found = runs(ex, task_id)
    assert len(found) == 1, (task_id, [tr["taskId"] for tr in ex.get("taskRunList") or []])
    return found[0]


def state(tr: dict[str, Any]) -> str:
    return str(tr["state"]["current"])


def flow(flow_id: str, body: str) -> str:
    return f"id: {flow_id}\nnamespace: {NS}\n" + body


# ---------------------------------------------------------------- WorkingDirectory

WORKING_DIRECTORY = flow(
    "working-directory",
    """
inputs:
  - id: failed
    type: STRING
tasks:
  - id: worker
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: first
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - mkdir -p out
          - test "{{ inputs.failed }}" = false
          - printf '%s' "{{ taskrun.id }}" > out/stay.txt
      - id: second
        type: io.kestra.plugin.scripts.shell.Commands
        outputFiles:
          - out/*
        commands:
          - 'echo "::{\\"outputs\\": {\\"stay\\": \\"$(cat out/stay.txt)\\"}}::"'
      - id: disabled
        type: io.kestra.plugin.core.debug.Return
        disabled: true
        format: never
    errors:
      - id: error-t1
        type: io.kestra.plugin.core.debug.Return
        format: "Error Trigger ! {{ task.id }}"
  - id: 2_end
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.second.outputFiles['out/stay.txt'] }}"
""",
)


def test_working_directory_tasks_share_one_directory(server: Server) -> None:
    """Kestra ``WorkingDirectoryTest.success`` (flow ``working-directory.yaml``): SUCCESS, four
    task runs, the last one's value a ``kestra://`` URI of the file the first task wrote and
    the second found in the same directory (the plugin page's third example)."""
    server.deploy(WORKING_DIRECTORY)
    ex = server.run("working-directory", {"failed": "false"})
    assert ex["state"]["current"] == "SUCCESS", ex
    assert [tr["taskId"] for tr in ex["taskRunList"]] == ["worker", "first", "second", "2_end"]
    first, second = one(ex, "first"), one(ex, "second")
    assert first["parentTaskRunId"] == second["parentTaskRunId"] == one(ex, "worker")["id"]
    assert second["outputs"]["vars"]["stay"] == first["id"]
    uri = one(ex, "2_end")["outputs"]["value"]
    assert uri.startswith("lanner:///") and server.read(uri) == first["id"]


def test_working_directory_failure_runs_its_errors(server: Server) -> None:
    """Kestra ``WorkingDirectoryTest.failed``: FAILED, three task runs (the directory, the
    failed task, ``error-t1``): the tasks after the failure and ``2_end`` never run."""
    server.deploy(WORKING_DIRECTORY)
    ex = server.run("working-directory", {"failed": "true"})
    assert ex["state"]["current"] == "FAILED"
    assert sorted(tr["taskId"] for tr in ex["taskRunList"]) == ["error-t1", "first", "worker"]
    assert state(one(ex, "first")) == "FAILED"
    assert state(one(ex, "error-t1")) == "SUCCESS"


def test_working_directory_input_and_output_files(server: Server) -> None:
    """Kestra ``WorkingDirectoryTest.inputFiles`` / ``outputFiles`` (flows
    ``working-directory-inputs.yml``, ``working-directory-outputs.yml``): ``inputFiles`` are
    in the directory before its tasks run, and ``outputFiles`` gives the directory the output
    ``outputFiles`` (name -> URI) whose file holds what a task wrote."""
    server.deploy(
        flow(
            "working-directory-files",
            """
tasks:
  - id: workingDir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    inputFiles:
      input.txt: Hello World
    outputFiles:
      - output.txt
    tasks:
      - id: copy
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - cp input.txt output.txt
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(outputs.workingDir.outputFiles['output.txt']) }}"
""",
        )
    )
    ex = server.run("working-directory-files")
    assert ex["state"]["current"] == "SUCCESS", ex
    files = one(ex, "workingDir")["outputs"]["outputFiles"]
    assert list(files) == ["output.txt"]
    assert server.read(files["output.txt"]) == "Hello World"
    assert one(ex, "after")["outputs"]["value"] == "Hello World"


def test_working_directory_namespace_files(server: Server) -> None:
    """Kestra ``WorkingDirectoryTest.namespaceFiles`` (flow
    ``working-directory-namespace-files.yaml``): the namespace's files are in the directory
    except the excluded ``/ignore/**``, so reading ``/ignore/4.txt`` fails: t1..t3 read
    first/second/third, t4 FAILED, the AllowFailure around it and the execution WARNING.
    The files are uploaded through the namespace-files API first."""
    for path, content in {
        "/test/a/b/c/1.txt": "first",
        "/a/b/c/2.txt": "second",
        "/a/b/3.txt": "third",
        "/ignore/4.txt": "4th",
    }.items():
        uploaded = server.api.client.post(
            f"/api/v1/namespaces/{NS}/files",
            params={"path": path},
            files={"fileContent": (path.rsplit("/", 1)[-1], content.encode())},
        )
        assert uploaded.status_code in (200, 204), uploaded.text
    tasks = "".join(
        f"""
          - id: {task_id}
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - value=$(cat {path})
              - 'echo "::{{\\"outputs\\": {{\\"value\\": \\"$value\\"}}}}::"'"""
        for task_id, path in (
            ("t1", "test/a/b/c/1.txt"),
            ("t2", "a/b/c/2.txt"),
            ("t3", "a/b/3.txt"),
            ("t4", "ignore/4.txt"),
        )
    )
    server.deploy(
        flow(
            "working-directory-namespace-files",
            f"""
tasks:
  - id: allow
    type: io.kestra.plugin.core.flow.AllowFailure
    tasks:
      - id: worker
        type: io.kestra.plugin.core.flow.WorkingDirectory
        namespaceFiles:
          enabled: true
          exclude:
            - /ignore/**
        tasks:{tasks}
""",
        )
    )
    ex = server.run("working-directory-namespace-files")
    assert len(ex["taskRunList"]) == 6
    assert ex["state"]["current"] == "WARNING"
    assert state(one(ex, "t4")) == "FAILED"
    values = [one(ex, t)["outputs"]["vars"]["value"] for t in ("t1", "t2", "t3")]
    assert values == ["first", "second", "third"]


CACHE_TASKS = """
tasks:
  - id: workingDir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    cache:
      ttl: PT5M
      patterns:
        - "*.txt"
    tasks:
      - id: exists
        type: io.kestra.plugin.scripts.shell.Commands
        outputFiles:
          - hello.txt
        commands:
          - ls
      - id: inputFiles
        type: io.kestra.plugin.scripts.shell.Commands
        inputFiles:
          hello.txt: HELLO WORLD
        commands:
          - cat hello.txt
"""


def cache_uri(tenant: str, flow_id: str) -> str:
    return f"lanner:///{tenant}/{NS.replace('.', '/')}/{flow_id}/workingDir/cache/cache.zip"


def test_working_directory_cache(server: Server) -> None:
    """Kestra ``WorkingDirectoryTest.cache`` (flow ``working-directory-cache.yml``): the first
    run finds no ``hello.txt`` and writes it; the cache (``*.txt``, ``ttl: PT5M``) keeps it,
    so the second run's first task finds it before anything wrote it. The archive is under the
    tenant (Kestra's ``StorageContext.getCacheURI``, ``/<namespace>/<flow>/<task>/cache/
    cache.zip``, which its storages place below the tenant)."""
    server.deploy(flow("working-directory-cache", CACHE_TASKS))
    cache = cache_uri("main", "working-directory-cache")
    server.storage.delete(cache)
    first = server.run("working-directory-cache")
    assert first["state"]["current"] == "SUCCESS", first
    assert len(first["taskRunList"]) == 3
    assert one(first, "exists")["outputs"]["outputFiles"] == {}
    assert server.storage.exists(cache)
    second = server.run("working-directory-cache")
    assert second["state"]["current"] == "SUCCESS"
    assert list(one(second, "exists")["outputs"]["outputFiles"]) == ["hello.txt"]


def test_working_directory_cache_is_per_tenant(server: Server) -> None:
    """Two tenants with the same namespace, flow and task id do not share a cache (issue 13:
    every entity carries its tenant; Kestra's storages put the tenant above the cache URI): once
    ``main`` cached ``hello.txt``, the first run in ``acme`` still finds nothing, and writes
    ``acme``'s own archive, which its next run restores."""
    flow_id = "working-directory-cache-tenants"
    source = flow(flow_id, CACHE_TASKS)
    client = server.api.client
    for tenant in ("main", "acme"):
        response = client.post(
            f"/api/v1/{tenant}/flows",
            content=source,
            headers={"content-type": "application/x-yaml"},
        )
        assert response.status_code in (200, 409), response.text

    def run(tenant: str) -> dict[str, Any]:
        response = client.post(f"/api/v1/{tenant}/executions/{NS}/{flow_id}")
        assert response.status_code == 200, response.text
        execution_id = response.json()["id"]

        def ended() -> dict[str, Any] | None:
            found = client.get(f"/api/v1/{tenant}/executions/{execution_id}")
            body: dict[str, Any] = found.json() if found.status_code == 200 else {}
            current = (body.get("state") or {}).get("current")
            return body if current in ("SUCCESS", "WARNING", "FAILED", "KILLED") else None

        from tests.infra.waiting import wait_until

        ended_execution: dict[str, Any] = wait_until(ended, WAIT, f"{flow_id} in {tenant}")
        assert ended_execution["state"]["current"] == "SUCCESS", ended_execution
        return ended_execution

    assert one(run("main"), "exists")["outputs"]["outputFiles"] == {}
    assert server.storage.exists(cache_uri("main", flow_id))
    assert not server.storage.exists(cache_uri("acme", flow_id))
    assert one(run("acme"), "exists")["outputs"]["outputFiles"] == {}  # not main's cache
    assert server.storage.exists(cache_uri("acme", flow_id))
    assert list(one(run("acme"), "exists")["outputs"]["outputFiles"]) == ["hello.txt"]


def test_working_directory_retry_retries_a_failed_task_in_the_directory(server: Server) -> None:
    """A ``retry`` on the WorkingDirectory governs its tasks that have none (Kestra's
    ``ExecutorService.handleChildWorkerTaskResult``, kestra-io/kestra@58c1ca2: a failed runnable
    task run follows its own ``retry``, else the nearest parent's, else the flow's); Kestra's
    retry example
    (kestra.io/docs/workflow-components/retries: ``taskrun.attemptsCount``, ``warningOnRetry``):
    the flaky task fails twice, succeeds on its third attempt, ends WARNING. Each attempt is a
    new attempt of the same task run and runs in the same directory (it finds the file the task
    before wrote; ``attempts.txt`` collects 0, 1, 2). A task with its own ``retry`` follows it
    (``maxAttempt: 2``), and once attempts are exhausted the directory fails and runs its
    ``errors``."""
    server.deploy(
        flow(
            "working-directory-retry",
            """
inputs:
  - id: succeedAt
    type: INT
tasks:
  - id: wdir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    retry:
      type: constant
      interval: PT0.2S
      maxAttempt: 5
      warningOnRetry: true
    tasks:
      - id: prepare
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo prepared > prepared.txt
      - id: flaky
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - test -f prepared.txt
          - echo "{{ taskrun.attemptsCount }}" >> attempts.txt
          - 'if [ "{{ taskrun.attemptsCount }}" -eq 2 ]; then exit 0; else exit 1; fi'
      - id: own
        type: io.kestra.plugin.scripts.shell.Commands
        retry:
          type: constant
          interval: PT0.1S
          maxAttempt: 2
        commands:
          - 'test "{{ inputs.succeedAt }}" -le "{{ taskrun.attemptsCount }}"'
      - id: after
        type: io.kestra.plugin.scripts.shell.Commands
        outputFiles:
          - attempts.txt
        commands:
          - cat attempts.txt
    errors:
      - id: handled
        type: io.kestra.plugin.core.debug.Return
        format: "{{ task.id }}"
""",
        )
    )

    def attempts(tr: dict[str, Any]) -> list[str]:
        return [a["state"]["current"] for a in tr.get("attempts") or []]

    ex = server.run("working-directory-retry", {"succeedAt": 1})
    assert ex["state"]["current"] == "WARNING", ex
    assert attempts(one(ex, "prepare")) == ["SUCCESS"]
    flaky = one(ex, "flaky")
    assert attempts(flaky) == ["FAILED", "FAILED", "SUCCESS"]
    assert state(flaky) == "WARNING"
    assert "RETRYING" in [h["state"] for h in flaky["state"]["histories"]]
    assert attempts(one(ex, "own")) == ["FAILED", "SUCCESS"]
    uri = one(ex, "after")["outputs"]["outputFiles"]["attempts.txt"]
    assert server.read(uri).split() == ["0", "1", "2"]
    assert not runs(ex, "handled")

    ex = server.run("working-directory-retry", {"succeedAt": 5})  # `own` never succeeds
    assert ex["state"]["current"] == "FAILED", ex
    assert attempts(one(ex, "own")) == ["FAILED", "FAILED"]  # its own maxAttempt, not 5
    assert state(one(ex, "own")) == "FAILED"
    assert not runs(ex, "after")
    assert state(one(ex, "handled")) == "SUCCESS"


def test_working_directory_timeout_bounds_its_tasks(server: Server) -> None:
    """The WorkingDirectory's own ``timeout`` bounds the tasks it runs (Kestra's timeout page,
    kestra.io/docs/workflow-components/timeout: "If a task run exceeds the specified duration,
    Kestra automatically stops it and marks it as failed"; its ``Worker.handleTask`` runs the
    directory's tasks on one worker): the task running at the deadline is stopped and fails
    with "Timeout after PT3S", the next one never starts, the directory ends FAILED and its
    ``errors`` run."""
    server.deploy(
        flow(
            "working-directory-timeout",
            """
tasks:
  - id: wdir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    timeout: PT3S
    tasks:
      - id: quick
        type: io.kestra.plugin.core.debug.Return
        format: quick
      - id: slow
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT10M
      - id: never
        type: io.kestra.plugin.core.debug.Return
        format: never
    errors:
      - id: handled
        type: io.kestra.plugin.core.debug.Return
        format: "{{ task.id }}"
""",
        )
    )
    ex = server.run("working-directory-timeout")
    assert ex["state"]["current"] == "FAILED", ex
    assert state(one(ex, "quick")) == "SUCCESS"
    assert state(one(ex, "slow")) == "FAILED"
    assert not runs(ex, "never")
    assert state(one(ex, "wdir")) == "FAILED"
    assert state(one(ex, "handled")) == "SUCCESS"
    logs = server.api.logs(ex["id"])
    slow = one(ex, "slow")["id"]
    assert any(
        line.get("taskRunId") == slow and "Timeout after PT3S" in line["message"] for line in logs
    ), logs


def test_working_directory_in_a_loop_sees_its_iteration(server: Server) -> None:
    """Kestra ``WorkingDirectoryTest.taskRun`` / ``taskRunNested`` (flows
    ``working-directory-taskrun.yml``, ``working-directory-taskrun-nested.yml``): inside a
    ForEach, a task of the directory renders ``taskrun.value`` as the iteration's value and
    ``parent`` as ``{"taskrun":{"value":"1"}}``; its outputs are ``outputs.<task>.<value>``."""
    server.deploy(
        flow(
            "working-directory-taskrun",
            """
tasks:
  - id: parallel
    type: io.kestra.plugin.core.flow.ForEach
    concurrencyLimit: 0
    values: ["1"]
    tasks:
      - id: seq
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: workingDir
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: log-taskrun
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}"
              - id: log-workerparent
                type: io.kestra.plugin.core.debug.Return
                format: "{{ parent }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs['log-taskrun']['1'].value }}"
""",
        )
    )
    ex = server.run("working-directory-taskrun")
    assert ex["state"]["current"] == "SUCCESS", ex
    assert len(ex["taskRunList"]) == 6
    assert one(ex, "log-taskrun")["outputs"]["value"] == "1"
    parent = one(ex, "log-workerparent")["outputs"]["value"].replace(" ", "")
    assert '{"taskrun":{"value":"1"}}' in parent
    assert one(ex, "after")["outputs"]["value"] == "1"


def test_working_directory_kill_stops_the_task_inside(server: Server) -> None:
    """A kill reaches the task running inside the directory (Kestra's worker kills the
    WorkingDirectory's current task): it ends KILLED, the next one never starts, and the
    directory and the execution end KILLED."""
    server.deploy(
        flow(
            "working-directory-kill",
            """
tasks:
  - id: workingDir
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: sleep
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - sleep 60
      - id: never
        type: io.kestra.plugin.core.debug.Return
        format: never
""",
        )
    )
    created = server.api.create(NS, "working-directory-kill", None)
    server.api.wait(
        created["id"],
        lambda ex: any(state(tr) == "RUNNING" for tr in runs(ex, "sleep")),
        WAIT,
    )
    killed = server.api.client.delete(f"/api/v1/executions/{created['id']}/kill")
    assert killed.status_code == 202, killed.text
    ex = server.api.wait_terminal(created["id"], WAIT)
    assert ex["state"]["current"] == "KILLED"
    assert [(tr["taskId"], state(tr)) for tr in ex["taskRunList"]] == [
        ("workingDir", "KILLED"),
        ("sleep", "KILLED"),
    ]


# ---------------------------------------------------------------- ForEachItem

SUBFLOW = flow(
    "for-each-item-subflow",
    """
inputs:
  - id: items
    type: STRING
tasks:
  - id: return
    type: io.kestra.plugin.core.debug.Return
    format: "{{ read(inputs.items) }}"
outputs:
  - id: value
    type: STRING
    value: "{{ outputs.return.value }}"
""",
)
SUBFLOW_FAILED = flow(
    "for-each-item-subflow-failed",
    """
inputs:
  - id: items
    type: STRING
tasks:
  - id: per-item
    type: io.kestra.plugin.core.execution.Fail
""",
)


def _each(flow_id: str, subflow: str, batch: str, wait: bool = True) -> str:
    return flow(
        flow_id,
        f"""
inputs:
  - id: file
    type: FILE
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ inputs.file }}}}"
    batch:
      {batch}
    namespace: {NS}
    flowId: {subflow}
    wait: {str(wait).lower()}
    transmitFailed: true
    inputs:
      items: "{{{{ taskrun.items }}}}"
""",
    )


LINES = "".join(f"{n:>20}\n" for n in range(10))  # ForEachItemCaseTest's padded lines, fewer


def test_for_each_item_one_subflow_per_batch_and_merged_outputs(server: Server) -> None:
    """Kestra ``ForEachItemCaseTest.forEachItemWithSubflowOutputs`` (flows
    ``for-each-item-outputs.yaml``, ``for-each-item-outputs-subflow.yaml``): one subflow
    execution per batch of ``rows`` lines, each with ``items`` the URI of its batch file made
    by ``each_split`` and the parent's correlation id; ``each_items`` has one SUCCESS attempt,
    ``numberOfBatches`` and ``iterations`` ``{CREATED: 0, RUNNING: 0, SUCCESS: n}``;
    ``each_merge.subflowOutputs`` is a file with one line per subflow execution."""
    server.deploy(SUBFLOW)
    source = _each("for-each-item-outputs", "for-each-item-subflow", "rows: 4")
    server.deploy(
        source.replace("\ntasks:", "\ntasks:", 1)
        + """
  - id: return
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.each_merge.subflowOutputs }}"
"""
    )
    ex = server.run("for-each-item-outputs", {"file": "@content:" + LINES})
    assert ex["state"]["current"] == "SUCCESS", ex
    assert [tr["taskId"] for tr in ex["taskRunList"]] == [
        "each",
        "each_split",
        "each_items",
        "each_merge",
        "return",
    ]
    items = one(ex, "each_items")
    assert [state(a) for a in items["attempts"]] == ["SUCCESS"]
    assert items["outputs"]["numberOfBatches"] == 3
    assert items["outputs"]["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 3}
    children = server.children("for-each-item-subflow", ex["id"], 3)
    assert len(children) == 3
    for child in children:
        assert child["state"]["current"] == "SUCCESS"
        assert "/tasks/each_split/" in child["inputs"]["items"]
        labels = {lb["key"]: lb["value"] for lb in child["labels"]}
        assert labels["system.correlationId"] == ex["id"]
    merged = server.read(one(ex, "each_merge")["outputs"]["subflowOutputs"])
    assert merged.splitlines() == [
        '{"value":"' + "".join(f"{n:>20}\\n" for n in batch) + '"}'
        for batch in ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9))
    ]
    assert one(ex, "return")["outputs"]["value"].startswith("lanner:///")


def test_for_each_item_failed_subflows_fail_it(server: Server) -> None:
    """Kestra ``ForEachItemCaseTest.forEachItemFailed`` (flows ``for-each-item-failed.yaml``,
    ``for-each-item-subflow-failed.yaml``): every batch execution FAILED, ``each_items``
    FAILED with one FAILED attempt and ``iterations`` ``{CREATED: 0, RUNNING: 0, FAILED: n}``,
    three task runs (no merge) and the execution FAILED (``transmitFailed: true``)."""
    server.deploy(SUBFLOW_FAILED)
    server.deploy(_each("for-each-item-failed", "for-each-item-subflow-failed", "rows: 4"))
    ex = server.run("for-each-item-failed", {"file": "@content:" + LINES})
    assert ex["state"]["current"] == "FAILED"
    assert [tr["taskId"] for tr in ex["taskRunList"]] == ["each", "each_split", "each_items"]
    items = one(ex, "each_items")
    assert [state(a) for a in items["attempts"]] == ["FAILED"]
    assert items["outputs"]["iterations"] == {"CREATED": 0, "RUNNING": 0, "FAILED": 3}
    assert len(server.children("for-each-item-subflow-failed", ex["id"], 3)) == 3


def test_for_each_item_without_wait(server: Server) -> None:
    """Kestra ``ForEachItemCaseTest.forEachItemNoWait`` (flow ``for-each-item-no-wait.yaml``):
    ``each_items`` ends SUCCESS at once with ``iterations`` ``{RUNNING: 0, SUCCESS: n}`` (no
    CREATED), and the batch executions still all run; here batches by ``partitions``."""
    server.deploy(SUBFLOW)
    server.deploy(
        _each("for-each-item-no-wait", "for-each-item-subflow", "partitions: 2", wait=False)
    )
    ex = server.run("for-each-item-no-wait", {"file": "@content:" + LINES})
    assert ex["state"]["current"] == "SUCCESS", ex
    items = one(ex, "each_items")
    assert items["outputs"]["numberOfBatches"] == 2
    assert items["outputs"]["iterations"] == {"RUNNING": 0, "SUCCESS": 2}
    children = server.children("for-each-item-subflow", ex["id"], 2)
    assert sorted(c["state"]["current"] for c in children) == ["SUCCESS", "SUCCESS"]


def test_for_each_item_empty_items_and_bytes_batches(server: Server) -> None:
    """Kestra ``ForEachItemCaseTest.forEachItemEmptyItems``: an empty file makes no batch,
    four task runs, SUCCESS and no outputs on ``each_items``. Batches by ``bytes`` keep whole
    lines: 10 lines of 21 bytes in batches of at most 64 bytes are 4 batches."""
    server.deploy(SUBFLOW)
    server.deploy(_each("for-each-item-bytes", "for-each-item-subflow", "bytes: '64'"))
    empty = server.run("for-each-item-bytes", {"file": "@content:"})
    assert empty["state"]["current"] == "SUCCESS", empty
    assert len(empty["taskRunList"]) == 4
    assert one(empty, "each_items").get("outputs") is None
    ex = server.run("for-each-item-bytes", {"file": "@content:" + LINES})
    assert ex["state"]["current"] == "SUCCESS", ex
    assert one(ex, "each_items")["outputs"]["numberOfBatches"] == 4


# ---------------------------------------------------------------- LoopUntil and Exit


def test_loop_until(server: Server) -> None:
    """Kestra ``LoopUntilCaseTest.waitforMultipleTasks`` (flow ``waitfor-multiple-tasks.yaml``)
    and ``waitforMaxIterations``: the loop ends when its condition holds after the third
    iteration (``iterationCount`` 3, the last ``count`` "4"); with ``maxIterations: 3`` and
    ``failOnMaxReached`` it ends FAILED with ``iterationCount`` 4."""
    server.deploy(
        flow(
            "loop-until",
            """
inputs:
  - id: target
    type: STRING
tasks:
  - id: waitfor
    type: io.kestra.plugin.core.flow.LoopUntil
    condition: "{{ outputs.output_values.values.count == inputs.target }}"
    failOnMaxReached: true
    checkFrequency:
      maxIterations: 3
      interval: PT0.1S
    tasks:
      - id: echo
        type: io.kestra.plugin.core.log.Log
        message: looping
      - id: output_values
        type: io.kestra.plugin.core.output.OutputValues
        values:
          count: "{{ outputs.waitfor.iterationCount + 1 }}"
""",
        )
    )
    ex = server.run("loop-until", {"target": "4"})
    assert ex["state"]["current"] == "SUCCESS", ex
    assert one(ex, "waitfor")["outputs"] == {"iterationCount": 3}
    assert ex["taskRunList"][-1]["outputs"] == {"values": {"count": "4"}}
    failed = server.run("loop-until", {"target": "10"})
    assert failed["state"]["current"] == "FAILED"
    assert one(failed, "waitfor")["outputs"] == {"iterationCount": 4}


def _exit(flow_id: str, exit_state: str) -> str:
    return flow(
        flow_id,
        f"""
inputs:
  - id: state
    type: SELECT
    values: [CONTINUE, END]
    defaults: END
tasks:
  - id: if
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ inputs.state == 'CONTINUE' }}}}"
    then:
      - id: hello
        type: io.kestra.plugin.core.log.Log
        message: I'm continuing
    else:
      - id: exit
        type: io.kestra.plugin.core.execution.Exit
        state: {exit_state}
  - id: end
    type: io.kestra.plugin.core.log.Log
    message: I'm ending
""",
    )


def test_exit(server: Server) -> None:
    """Kestra ``ExitTest`` (flows ``exit.yaml``, ``exit-killed.yaml``): ``state: WARNING``
    ends the execution WARNING with two task runs, the If WARNING; ``state: KILLED`` kills it:
    KILLED, both task runs KILLED; ``end`` never runs."""
    server.deploy(_exit("exit", "WARNING"))
    server.deploy(_exit("exit-killed", "KILLED"))
    ex = server.run("exit")
    assert ex["state"]["current"] == "WARNING"
    assert [(tr["taskId"], state(tr)) for tr in ex["taskRunList"]] == [
        ("if", "WARNING"),
        ("exit", "WARNING"),
    ]
    killed = server.run("exit-killed")
    assert killed["state"]["current"] == "KILLED"
    assert [(tr["taskId"], state(tr)) for tr in killed["taskRunList"]] == [
        ("if", "KILLED"),
        ("exit", "KILLED"),
    ]


# ---------------------------------------------------------------- bad properties


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            """
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: par
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: x
""",
            "Only runnable tasks are allowed as children of a WorkingDirectory task",
        ),
        (
            """
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{ inputs.file }}"
    namespace: x
""",
            "flowId",
        ),
        (
            """
  - id: exit
    type: io.kestra.plugin.core.execution.Exit
    state: DONE
""",
            "state",
        ),
        (
            """
  - id: loop
    type: io.kestra.plugin.core.flow.LoopUntil
    tasks:
      - id: r
        type: io.kestra.plugin.core.debug.Return
        format: x
""",
            "condition",
        ),
    ],
    ids=["working-directory-flowable-child", "for-each-item-no-flow-id", "exit-state", "loop"],
)
def test_bad_properties_are_refused_at_deploy(server: Server, body: str, named: str) -> None:
    """Kestra refuses these flows at validation (``WorkingDirectoryTaskValidator``, the
    plugins' required properties); Lanner answers the deploy with a 422 naming the field."""
    source = flow("bad", "tasks:" + body)
    response = server.api.client.post(
        "/api/v1/flows", content=source, headers={"content-type": "application/x-yaml"}
    )
    assert response.status_code == 422, response.text
    assert named in response.text
