"""`lanner server webserver` and `lanner server indexer` as real processes on real Kafka.

Topics are made by `lanner kafka init` under a prefix of the test's own (or, for the start-up
test, by the component itself). The repository is SQLite in the test's data directory, the
combination supported for a single webserver until the Elasticsearch repository exists. The
executor is not running: the test plays its part, reading the `executor` topic and writing
execution snapshots to `executions`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.models.execution import Execution
from common.models.messages import (
    EXECUTOR_INPUT,
    ExecutorInput,
    Kill,
    LogEntry,
    NewExecution,
    Restart,
    WorkerHeartbeat,
)
from common.models.messages import Resume as ResumeOrder
from common.models.state import State
from common.queue.base import EXECUTIONS, EXECUTOR, FLOWS, LOGS, WORKERS, Queue
from common.queue.kafka_client import create_admin
from common.queue.sqlite import SqliteDatabase
from common.repository.sqlite import sqlite_repositories
from tests.contracts.queue import open_queue
from tests.contracts.repository import make_execution
from tests.ha.test_queue_kafka import kafka_queue_settings
from tests.infra.fixtures import StartLanner
from tests.infra.processes import ManagedProcess, free_ports
from tests.infra.waiting import WaitTimeout, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

DEADLINE = 60.0
HELLO = """\
id: hello
namespace: company.team
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


class Component:
    """A started component: its process, API and management addresses."""

    def __init__(self, process: ManagedProcess, api_port: int, management_port: int) -> None:
        self.process = process
        self.api = f"http://127.0.0.1:{api_port}"
        self.management = f"http://127.0.0.1:{management_port}"
        self.last_ready = ""

    def ready(self) -> bool:
        try:
            answer = httpx.get(f"{self.management}/health/ready", timeout=5)
        except httpx.HTTPError as exc:
            self.last_ready = repr(exc)
            return False
        self.last_ready = answer.text
        return answer.status_code == 200

    def wait_ready(self, timeout: float = DEADLINE) -> None:
        self.process.wait_for(self.ready, timeout, "/health/ready to answer 200 (see last_ready)")

    def metrics(self) -> str:
        return httpx.get(f"{self.management}/metrics", timeout=5).text

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of the management port's /metrics (0 when absent)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
            if match and match.group(1) == name:
                found = ",".join(sorted((match.group(2) or "").split(","))) if labels else ""
                if found == wanted or not labels:
                    return float(match.group(3))
        return 0.0

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def start_line(self, role: str) -> str:
        """The one line the component logs once started (right after it is ready)."""

        def line() -> str | None:
            marker = f"lanner {role} started"
            return next((ln for ln in self.log().splitlines() if marker in ln), None)

        self.process.wait_for(line, DEADLINE, "its start line")
        found = line()
        assert found is not None
        return found


@pytest.fixture
def env(kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path) -> dict[str, Any]:
    """The settings of the test's deployment: its topic prefix, its data directory."""
    return {
        "servers": kafka_bootstrap_servers,
        "prefix": unique_name + ".",
        "data_dir": tmp_path / "data",
    }


def component_env(env: dict[str, Any], api_port: int, management_port: int) -> dict[str, str]:
    """The LANNER_* variables of a component; the repository is SQLite unless ``env`` names
    Elasticsearch (``repository``, ``elasticsearch_url``, ``index_prefix``)."""
    repository = env.get("repository", "sqlite")
    extra = (
        {
            "LANNER_ELASTICSEARCH_URL": env["elasticsearch_url"],
            "LANNER_ELASTICSEARCH_INDEX_PREFIX": env["index_prefix"],
        }
        if repository == "elasticsearch"
        else {}
    )
    return {
        **extra,
        "LANNER_QUEUE": "kafka",
        "LANNER_REPOSITORY": repository,
        "LANNER_KAFKA_BOOTSTRAP_SERVERS": env["servers"],
        "LANNER_KAFKA_TOPIC_PREFIX": env["prefix"],
        "LANNER_DATA_DIR": str(env["data_dir"]),
        "LANNER_PORT": str(api_port),
        "LANNER_METRICS_PORT": str(management_port),
        # a killed member is noticed in seconds (the brokers' group.min.session.timeout.ms)
        "LANNER_KAFKA_CONSUMER_CONFIG": json.dumps(
            {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
        ),
    }


def start(
    lanner_process: StartLanner, env: dict[str, Any], *args: str, config: Path | None = None
) -> Component:
    """Starts `lanner server <args>`: configured by LANNER_* variables, or with ``config`` by
    that YAML file (written here) for everything but its ports."""
    api_port, management_port = free_ports(2)
    variables = component_env(env, api_port, management_port)
    argv = ["server", *args]
    if config is not None:
        values = {
            name.removeprefix("LANNER_").lower(): variables.pop(name)
            for name in list(variables)
            if name not in ("LANNER_PORT", "LANNER_METRICS_PORT")
        }
        values["kafka_consumer_config"] = json.loads(values["kafka_consumer_config"])
        config.write_text(json.dumps({"lanner": values}))  # JSON is YAML
        argv += ["--config", str(config)]
    process = lanner_process(argv, env=variables, name=args[0])
    return Component(process, api_port, management_port)


@pytest.fixture
def queue(env: dict[str, Any]) -> Iterator[Queue]:
    """The test's own client of the deployment's topics (made by `lanner kafka init`)."""
    settings = kafka_queue_settings(env["servers"], env["prefix"])
    opened = open_queue(settings)
    yield opened
    opened.close()


class TopicReader:
    """Everything on a topic, from its start, as it arrives (a group of the test's own)."""

    def __init__(self, queue: Queue, topic: str) -> None:
        self.subscription = queue.subscribe([topic], f"test-{topic}-{uuid.uuid4().hex[:8]}")
        self.values: list[bytes] = []

    def wait_for(self, what: str, predicate: Any) -> Any:
        def step() -> Any:
            records = self.subscription.poll(max_records=500, timeout=0.2)
            self.values += [r.value for r in records if r.value is not None]
            return predicate(self.values)

        return wait_until(step, DEADLINE, what, interval=0)

    def close(self) -> None:
        self.subscription.close()


def inputs_of(values: list[bytes], execution_id: str) -> list[ExecutorInput]:
    decoded = [EXECUTOR_INPUT.validate_json(value) for value in values]
    return [i for i in decoded if i.execution_id == execution_id]


def snapshot(api: httpx.Client, execution_id: str, state: State, sequence: int) -> bytes:
    """What the executor would write next for this execution: its state and a new sequence
    (FAILED: with a FAILED task run, which Kestra's restart rule needs)."""
    execution = Execution.model_validate(api.get(f"/api/v1/executions/{execution_id}").json())
    execution.set_state(state, datetime.now(UTC))
    if state == State.FAILED:
        from common.models.execution import TaskRun

        failed = TaskRun(
            id="failed-run",
            execution_id=execution_id,
            namespace=execution.namespace,
            flow_id=execution.flow_id,
            task_id="hello",
        )
        failed.set_state(State.FAILED, datetime.now(UTC))
        execution.task_run_list.append(failed)
    execution.sequence = sequence
    return execution.to_json()


def wait_state(api: httpx.Client, execution_id: str, state: State) -> None:
    wait_until(
        lambda: api.get(f"/api/v1/executions/{execution_id}").json()["state"]["current"] == state,
        DEADLINE,
        f"execution {execution_id} to be {state} in the repository",
    )


def test_the_webserver_sends_every_order_to_the_executor_topic_and_indexes_inside(
    lanner_process: StartLanner, env: dict[str, Any], queue: Queue
) -> None:
    web = start(lanner_process, env, "webserver")
    web.wait_ready()
    line = web.start_line("webserver")
    assert f"queue kafka {env['servers']} prefix {env['prefix']}" in line
    assert "repository sqlite" in line
    assert "partitions: live feeds: executions 4 (one consumer)" in line  # as kafka init made it
    assert "indexer group indexer holds" in line and "executions[" in line

    executor = TopicReader(queue, EXECUTOR)
    flows = TopicReader(queue, FLOWS)
    with httpx.Client(base_url=web.api, timeout=30) as api:
        created_flow = api.post(
            "/api/v1/flows", content=HELLO, headers={"Content-Type": "application/x-yaml"}
        )
        assert created_flow.status_code == 200, created_flow.text
        flows.wait_for("the flow on `flows`", lambda values: len(values) == 1)

        created = api.post("/api/v1/executions/company.team/hello")
        assert created.status_code == 200, created.text
        execution_id = created.json()["id"]
        executor.wait_for(
            "the new execution on `executor`",
            lambda values: any(
                isinstance(i, NewExecution) for i in inputs_of(values, execution_id)
            ),
        )

        # the executor's part: the execution pauses; the indexer inside the webserver stores it
        queue.emit(EXECUTIONS, execution_id, snapshot(api, execution_id, State.PAUSED, 5))
        wait_state(api, execution_id, State.PAUSED)
        assert api.post(f"/api/v1/executions/{execution_id}/resume").status_code == 200
        killed = api.delete(f"/api/v1/executions/{execution_id}/kill")
        assert killed.status_code == 202, killed.text

        queue.emit(EXECUTIONS, execution_id, snapshot(api, execution_id, State.FAILED, 6))
        wait_state(api, execution_id, State.FAILED)
        restarted = api.post(f"/api/v1/executions/{execution_id}/restart")
        assert restarted.status_code == 200, restarted.text
        replayed = api.post(f"/api/v1/executions/{execution_id}/replay")
        assert replayed.status_code == 200, replayed.text
        replay_id = replayed.json()["id"]
        assert replay_id != execution_id

        orders = executor.wait_for(
            "resume, kill and restart on `executor`",
            lambda values: (
                [type(i) for i in inputs_of(values, execution_id)]
                == [NewExecution, ResumeOrder, Kill, Restart]
                and inputs_of(values, replay_id)
            ),
        )
        assert orders
        replay = inputs_of(executor.values, replay_id)
        assert len(replay) == 1 and isinstance(replay[0], NewExecution)
        assert replay[0].execution.original_id == execution_id

        # request metrics, by route template and status, on the management port
        route = "/api/v1/executions/{execution_id}/kill"
        assert (
            web.metric(
                "lanner_webserver_http_requests_total", method="DELETE", path=route, status="202"
            )
            == 1.0
        )
        assert 'lanner_webserver_http_request_duration_seconds_bucket{le="+Inf"' in web.metrics()
    executor.close()
    flows.close()


class FollowStream:
    """A follow stream read on a thread of its own: the events it received so far."""

    def __init__(self, api: str, execution_id: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.ended = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(api, execution_id), daemon=True)
        self._thread.start()

    def _read(self, api: str, execution_id: str) -> None:
        try:
            with httpx.Client(base_url=api, timeout=60) as client:
                url = f"/api/v1/executions/{execution_id}/follow"
                with client.stream("GET", url) as response:
                    response.raise_for_status()
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            self.events.append(json.loads(line[len("data: ") :]))
            self.ended = True
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def done(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.ended

    def progress(self) -> list[tuple[int, str]]:
        if self.error is not None:
            raise self.error
        return [(e["sequence"], e["state"]["current"]) for e in self.events]

    def join(self) -> None:
        self._thread.join(DEADLINE)


def live_members(env: dict[str, Any]) -> int:
    """Members, over every live-view consumer group of this deployment, that read its
    `executions` topic."""
    admin = create_admin(env["servers"])
    groups = [
        g.group_id
        for g in admin.list_consumer_groups(request_timeout=10).result().valid
        if g.group_id.startswith(env["prefix"] + "live-executions-")  # the queue prefixes groups
    ]
    if not groups:
        return 0
    topic = env["prefix"] + EXECUTIONS
    count = 0
    for future in admin.describe_consumer_groups(groups, request_timeout=10).values():
        description = future.result()
        for member in description.members:
            if any(tp.topic == topic for tp in member.assignment.topic_partitions):
                count += 1
    return count


def test_two_follow_streams_share_one_consumer_and_each_sees_its_own_updates_to_the_end(
    lanner_process: StartLanner, env: dict[str, Any], queue: Queue
) -> None:
    web = start(lanner_process, env, "webserver", "--no-indexer")
    web.wait_ready()
    with httpx.Client(base_url=web.api, timeout=30) as api:
        assert (
            api.post(
                "/api/v1/flows", content=HELLO, headers={"Content-Type": "application/x-yaml"}
            ).status_code
            == 200
        )
        ids = [api.post("/api/v1/executions/company.team/hello").json()["id"] for _ in range(2)]
        created = {
            i: Execution.model_validate(api.get(f"/api/v1/executions/{i}").json()) for i in ids
        }
    streams = {i: FollowStream(web.api, i) for i in ids}
    for i, stream in streams.items():
        wait_until(stream.progress, DEADLINE, f"the stored state of {i}")
    assert web.metric("lanner_webserver_live_streams", topic="executions") == 2.0
    assert web.metric("lanner_webserver_live_consumers", topic="executions") == 1.0
    wait_until(lambda: live_members(env) == 1, DEADLINE, "one live consumer in the groups")

    # the executor's part: interleaved snapshots of both executions, then their ends
    states = [State.RUNNING, State.RUNNING, State.PAUSED, State.RUNNING, State.SUCCESS]
    for sequence, state in enumerate(states, start=1):
        for i in ids:
            execution = created[i].model_copy(deep=True)
            execution.set_state(state, datetime.now(UTC))
            execution.sequence = sequence
            queue.emit(EXECUTIONS, i, execution.to_json())
    for i, stream in streams.items():
        wait_until(stream.done, DEADLINE, f"the stream of {i} to end at the terminal state")
        stream.join()
        expected = [(0, "CREATED")] + [(n, s.value) for n, s in enumerate(states, start=1)]
        assert stream.progress() == expected, i
        assert {e["id"] for e in stream.events} == {i}
    wait_until(
        lambda: web.metric("lanner_webserver_live_streams", topic="executions") == 0.0,
        DEADLINE,
        "the streams to be closed",
    )
    assert web.metric("lanner_webserver_live_consumers", topic="executions") == 1.0


def repository(env: dict[str, Any]) -> Any:
    db = SqliteDatabase(str(env["data_dir"] / "lanner.db"))
    return db, sqlite_repositories(db)


def test_the_indexer_creates_its_topics_indexes_in_sequence_order_and_commits_after_writing(
    lanner_process: StartLanner, env: dict[str, Any], tmp_path: Path
) -> None:
    indexer = start(lanner_process, env, "indexer", config=tmp_path / "lanner.yml")
    indexer.wait_ready()  # no `lanner kafka init`: the indexer made the topics
    line = indexer.start_line("indexer")
    assert "queue kafka" in line and "indexer group indexer holds" in line
    topics = create_admin(env["servers"]).list_topics(timeout=10).topics
    assert {env["prefix"] + t for t in ("flows", "executions", "logs", "workers")} <= set(topics)

    settings = {
        "queue": "kafka",
        "kafka_bootstrap_servers": env["servers"],
        "kafka_topic_prefix": env["prefix"],
    }
    queue = open_queue(settings)
    db, repos = repository(env)
    try:
        queue.emit(
            EXECUTIONS, "e1", make_execution("e1", state=State.SUCCESS, sequence=3).to_json()
        )
        wait_until(
            lambda: (found := repos.executions.get("main", "e1")) and found.sequence == 3,
            DEADLINE,
            "e1 at sequence 3",
        )
        # the other topics it copies
        flow = {"tenant": "main", "namespace": "company.team", "id": "hello", "revision": 1}
        queue.emit(FLOWS, "main/company.team/hello", json.dumps({**flow, "source": HELLO}).encode())
        entry = LogEntry(
            namespace="company.team",
            flow_id="hello",
            execution_id="e1",
            timestamp=datetime.now(UTC),
            message="indexed",
        )
        queue.emit(LOGS, "e1", entry.to_json())
        beat = WorkerHeartbeat(
            worker_id="w1", hostname="h", threads=2, running=0, date=datetime.now(UTC)
        )
        queue.emit(WORKERS, "w1", beat.to_json())
        wait_until(
            lambda: (
                repos.flows.get("main", "company.team", "hello")
                and [e.message for e in repos.logs.find("main", "e1")] == ["indexed"]
                and [w.worker_id for w in repos.workers.all()] == ["w1"]
            ),
            DEADLINE,
            "the flow, the log entry and the heartbeat indexed",
        )

        # an older snapshot, read in a later batch, never replaces the newer one
        queue.emit(
            EXECUTIONS, "e1", make_execution("e1", state=State.RUNNING, sequence=2).to_json()
        )
        queue.emit(EXECUTIONS, "e0", make_execution("e0").to_json())  # a barrier after it
        wait_until(lambda: repos.executions.get("main", "e0"), DEADLINE, "the barrier indexed")
        stored = repos.executions.get("main", "e1")
        assert stored is not None and (stored.sequence, stored.state.current) == (3, State.SUCCESS)

        # the repository refuses writes: the indexer retries, and never commits the offsets
        blocker = sqlite3.connect(str(env["data_dir"] / "lanner.db"), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
        queue.emit(
            EXECUTIONS, "e2", make_execution("e2", state=State.RUNNING, sequence=1).to_json()
        )
        indexer.process.wait_for(
            lambda: indexer.metric("lanner_indexer_write_failures_total") >= 1,
            DEADLINE,
            "a failed write",
        )
        indexer.process.kill()  # kill -9 with e2 read but not written
        blocker.execute("ROLLBACK")
        blocker.close()
        assert repos.executions.get("main", "e2") is None
        restarted = start(lanner_process, env, "indexer")
        restarted.wait_ready()
        wait_until(
            lambda: repos.executions.get("main", "e2"),
            DEADLINE,
            "e2 indexed by the restarted indexer (its offset was never committed)",
        )
    finally:
        queue.close()
        db.close()


def test_readiness_says_kafka_is_down_and_recovers_with_the_broker(
    lanner_process: StartLanner, infra: Any, tmp_path: Path, unique_name: str
) -> None:
    cluster = infra.kafka(1)  # a broker of this test's own, to stop
    try:
        env = {
            "servers": cluster.bootstrap_servers,
            "prefix": unique_name + ".",
            "data_dir": tmp_path / "data",
        }
        web = start(lanner_process, env, "webserver")
        web.wait_ready()
        node = cluster.nodes[0].node_id
        cluster.stop_node(node)

        def down() -> dict[str, Any] | None:
            answer = httpx.get(f"{web.management}/health/ready", timeout=10)
            return answer.json() if answer.status_code == 503 else None

        web.process.wait_for(down, DEADLINE, "/health/ready to say Kafka is down")
        body = down()
        assert body is not None and body["status"] == "DOWN"
        assert f"Kafka unreachable at {cluster.bootstrap_servers}" in body["reason"]
        api = httpx.get(f"{web.api}/health/ready", timeout=10)  # the API port says the same
        assert api.status_code == 503 and "Kafka unreachable" in api.json()["message"]

        cluster.restart_node(node)
        try:  # the groups rejoin once the coordinator is back: allow for a loaded machine
            web.wait_ready(2 * DEADLINE)
        except WaitTimeout as exc:
            raise AssertionError(f"not ready again: {web.last_ready}") from exc
        assert web.process.running
    finally:
        cluster.stop()
