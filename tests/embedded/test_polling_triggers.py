"""Polling triggers on the embedded backend (SQLite queue, real worker, executor, scheduler),
against a real HTTP server the test starts on 127.0.0.1.

Kestra references: ``io.kestra.core.models.triggers.PollingTriggerInterface`` (``interval``,
``evaluate`` returning an execution or nothing), ``io.kestra.core.schedulers.AbstractScheduler``
(a trigger is locked with ``evaluateRunningDate`` while a worker evaluates it and, through
``isExecutionNotRunning``, not evaluated again while the execution it started runs) and
``io.kestra.plugin.core.http.Trigger`` (``uri``, ``method``, ``responseCondition`` default
``{{ response.statusCode < 400 }}``, outputs ``uri``, ``code``, ``headers``, ``body`` as
``trigger.*``). The file trigger takes the shape of Kestra's file-system triggers
(``io.kestra.plugin.fs.*.Trigger``: ``from``, ``action``, output ``files``).

No sleeps: "the scheduler had its chance" is its tick counter moving on, every wait a condition
with a deadline.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from common.backends import Backends
from common.flow import parse_flow
from common.flow.store import save_flow
from common.models.messages import Kill
from common.models.trigger import WorkerTrigger
from common.queue import base as topics
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from common.storage.local import LocalStorage
from executor import EmbeddedExecutor
from scheduler import Scheduler
from tests.infra.waiting import wait_until
from worker import Worker, WorkerConfig

NS = "lanner.polling"


# ---------------------------------------------------------------- the HTTP server


@dataclass
class Endpoint:
    """What the server answers, and what it saw: every request counted, the most requests
    in progress at once, and a gate a request waits at while it is closed."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"ready": True})
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.gate.set()


class HttpFixture:
    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        endpoints = self.endpoints

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                endpoint = endpoints[self.path.strip("/")]
                with endpoint.lock:
                    endpoint.requests += 1
                    endpoint.in_flight += 1
                    endpoint.max_in_flight = max(endpoint.max_in_flight, endpoint.in_flight)
                try:
                    endpoint.gate.wait(120)
                    payload = json.dumps(endpoint.body).encode()
                    self.send_response(endpoint.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("X-Poll", str(endpoint.requests))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with endpoint.lock:
                        endpoint.in_flight -= 1

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def endpoint(self, name: str, **kwargs: Any) -> Endpoint:
        self.endpoints[name] = Endpoint(**kwargs)
        return self.endpoints[name]

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.gate.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- the stack


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.db = SqliteDatabase(str(tmp / "lanner.db"))
        self.queue = SqliteQueue(self.db)
        self.repositories = sqlite_repositories(self.db)
        self.storage = LocalStorage(tmp / "storage")
        self.settings = Settings()
        self.backends = Backends(self.queue, self.repositories, self.storage, self.settings)
        self.executor = EmbeddedExecutor(self.db, self.queue, self.repositories.flows)
        self.worker = Worker(self.queue, self.storage, WorkerConfig(threads=4, poll_timeout=0.1))
        self.scheduler = Scheduler(self.queue, self.repositories, self.settings, tick_interval=0.1)
        self.workers: list[Worker] = [self.worker]

    def start(self) -> None:
        self.executor.start()
        self.worker.start()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        for worker in self.workers:
            worker.stop(drain_timeout=0)
        self.executor.stop()

    def deploy(self, source: str) -> None:
        save_flow(self.backends, "main", parse_flow(source), source)

    def executions(self, flow_id: str) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT body FROM executor_states WHERE flow_id = ? ORDER BY created", (flow_id,)
        )
        return [json.loads(body)["execution"] for (body,) in rows]

    def states(self, flow_id: str) -> list[str]:
        return [e["state"]["current"] for e in self.executions(flow_id)]

    def ticks_pass(self, count: int) -> None:
        start = self.scheduler.ticks
        wait_until(lambda: self.scheduler.ticks >= start + count, 30, f"{count} scheduler ticks")


@pytest.fixture
def http() -> Iterator[HttpFixture]:
    server = HttpFixture()
    yield server
    server.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    built = Stack(tmp_path)
    built.start()
    yield built
    built.stop()


def http_flow(flow_id: str, url: str, tasks: str, extra: str = "") -> str:
    return f"""\
id: {flow_id}
namespace: {NS}
tasks:
{tasks}
triggers:
  - id: poll
    type: io.kestra.plugin.core.http.Trigger
    uri: {url}
    interval: PT0.1S
{extra}"""


RETURN = """\
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.code }} {{ trigger.body.ready }} {{ trigger.headers['x-poll'][0] }}"
"""
PAUSE = """\
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
"""


def _outputs(execution: dict[str, Any], task_id: str) -> dict[str, Any]:
    for run in execution.get("taskRunList") or []:
        if run["taskId"] == task_id and run["state"]["current"] == "SUCCESS":
            return dict(run.get("outputs") or {})
    return {}


# ---------------------------------------------------------------- tests


def test_http_trigger_fires_only_when_the_response_condition_holds(
    stack: Stack, http: HttpFixture
) -> None:
    endpoint = http.endpoint("status", body={"ready": False})
    stack.deploy(
        http_flow(
            "condition",
            f"{http.url}/status",
            RETURN,
            '    responseCondition: "{{ response.body.ready }}"\n',
        )
    )
    wait_until(lambda: endpoint.requests >= 3, 30, "three polls while not ready")
    assert stack.executions("condition") == []
    endpoint.body = {"ready": True}
    wait_until(lambda: "SUCCESS" in stack.states("condition"), 30, "an execution once ready")
    first = next(e for e in stack.executions("condition") if e["state"]["current"] == "SUCCESS")
    variables = first["trigger"]["variables"]
    assert first["trigger"]["id"] == "poll"
    assert variables["code"] == 200
    assert variables["body"] == {"ready": True}
    assert variables["uri"] == f"{http.url}/status"
    code, ready, poll = _outputs(first, "ret")["value"].split()
    assert (code, ready) == ("200", "true")
    assert int(poll) >= 4  # the three refused polls came before


def test_http_trigger_default_condition_is_a_status_below_400(
    stack: Stack, http: HttpFixture
) -> None:
    endpoint = http.endpoint("down", status=503)
    stack.deploy(http_flow("default-condition", f"{http.url}/down", RETURN))
    wait_until(lambda: endpoint.requests >= 3, 30, "three polls answered 503")
    assert stack.executions("default-condition") == []
    endpoint.status = 200
    wait_until(lambda: stack.executions("default-condition"), 30, "an execution once 200")


def test_an_evaluation_never_runs_beside_another_of_the_same_trigger(
    stack: Stack, http: HttpFixture
) -> None:
    endpoint = http.endpoint("slow", status=503)
    endpoint.gate.clear()
    stack.deploy(http_flow("slow", f"{http.url}/slow", RETURN))
    wait_until(lambda: endpoint.requests >= 1, 30, "the first poll")
    stack.ticks_pass(20)  # 20 ticks past an interval of 0.1 s: each would have sent it again
    assert endpoint.requests == 1
    endpoint.gate.set()
    wait_until(lambda: endpoint.requests >= 4, 30, "polls after the slow one answered")
    assert endpoint.max_in_flight == 1
    assert stack.executions("slow") == []


def test_no_evaluation_while_the_started_execution_runs(stack: Stack, http: HttpFixture) -> None:
    endpoint = http.endpoint("ready")
    stack.deploy(http_flow("paused", f"{http.url}/ready", RETURN + PAUSE))
    wait_until(lambda: stack.states("paused") == ["PAUSED"], 30, "the first execution to pause")
    polls = endpoint.requests
    assert polls == 1
    stack.ticks_pass(20)
    assert endpoint.requests == polls  # locked while its execution runs
    assert len(stack.executions("paused")) == 1
    execution_id = stack.executions("paused")[0]["id"]
    kill = Kill(id=f"kill:{execution_id}", execution_id=execution_id)
    stack.queue.emit(topics.EXECUTOR, execution_id, kill.to_json())
    wait_until(lambda: endpoint.requests > polls, 30, "a poll once the execution ended")
    wait_until(lambda: len(stack.executions("paused")) == 2, 30, "a second execution")
    assert stack.states("paused")[0] == "KILLED"


def test_file_trigger_fires_once_per_new_file(stack: Stack) -> None:
    stack.deploy(
        f"""\
id: files
namespace: {NS}
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.files | length }}}}"
triggers:
  - id: inbox
    type: io.kestra.plugin.core.storage.FileTrigger
    from: inbox/
    interval: PT0.1S
"""
    )
    root = "lanner:///main/lanner/polling/inbox/"  # the flow tenant's folder
    stack.storage.put(root + "a.csv", b"1,2\n")
    wait_until(lambda: stack.states("files") == ["SUCCESS"], 30, "an execution for a.csv")
    stack.storage.put(root + "b.csv", b"3,4\n")
    stack.storage.put(root + "c.csv", b"5,6\n")
    wait_until(
        lambda: (
            sum(len(e["trigger"]["variables"]["files"]) for e in stack.executions("files")) >= 3
        ),
        30,
        "executions for b.csv and c.csv",
    )
    stack.ticks_pass(20)  # the files stay (action NONE): they must not fire again
    names = [
        f["name"] for e in stack.executions("files") for f in e["trigger"]["variables"]["files"]
    ]
    assert sorted(names) == ["a.csv", "b.csv", "c.csv"]
    first = stack.executions("files")[0]["trigger"]["variables"]["files"][0]
    assert first["uri"] == root + "a.csv" and first["size"] == 4


def test_file_trigger_move_gives_the_moved_uri(stack: Stack) -> None:
    stack.deploy(
        f"""\
id: mover
namespace: {NS}
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ read(trigger.files[0].uri) }}}}"
triggers:
  - id: inbox
    type: io.kestra.plugin.core.storage.FileTrigger
    from: drop/
    action: MOVE
    moveDirectory: done/
    interval: PT0.1S
"""
    )
    stack.storage.put("lanner:///main/lanner/polling/drop/x.txt", b"moved")
    wait_until(lambda: stack.states("mover") == ["SUCCESS"], 30, "an execution for x.txt")
    assert _outputs(stack.executions("mover")[0], "ret")["value"] == "moved"
    assert not stack.storage.exists("lanner:///main/lanner/polling/drop/x.txt")
    assert stack.storage.exists("lanner:///main/lanner/polling/done/x.txt")


def test_a_worker_group_trigger_goes_to_its_group_topic(stack: Stack, http: HttpFixture) -> None:
    endpoint = http.endpoint("gpu")
    watcher = stack.queue.subscribe([topics.worker_triggers_topic("gpu")], "test-watcher")
    stack.deploy(
        http_flow("grouped", f"{http.url}/gpu", RETURN, "    workerGroup:\n      key: gpu\n")
    )

    def sent() -> list[WorkerTrigger]:
        return [
            WorkerTrigger.model_validate_json(r.value)
            for r in watcher.poll(100, timeout=0.1)
            if r.value is not None
        ]

    message = wait_until(sent, 30, "the trigger on worker-triggers.gpu")[0]
    watcher.close()
    assert message.flow_id == "grouped" and message.trigger["id"] == "poll"
    stack.ticks_pass(10)
    assert endpoint.requests == 0  # the default group's worker never evaluates it
    gpu = Worker(stack.queue, stack.storage, WorkerConfig(threads=1, group="gpu", poll_timeout=0.1))
    stack.workers.append(gpu)
    gpu.start()
    wait_until(lambda: stack.executions("grouped"), 30, "an execution once a gpu worker runs")
    assert endpoint.requests >= 1
