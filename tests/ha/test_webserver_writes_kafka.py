"""The webserver's writes on Kafka when the repository does not answer, in process: the app on a
real Kafka queue with its flows read from the ``flows`` topic (``Backends.flows``), and a
repository whose every call fails as Elasticsearch's do while it is down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from common.auth import SqliteTokenStore
from common.backends import Backends, create_queue
from common.errors import RepositoryError
from common.flow.topic_source import TopicFlowSource
from common.models.messages import EXECUTOR_INPUT, Kill, NewExecution, Restart, Resume
from common.models.state import State
from common.queue.base import EXECUTIONS, EXECUTOR, Queue
from common.queue.kafka_topics import topic_name
from common.queue.sqlite import SqliteDatabase
from common.repository.base import Repositories
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from common.storage.local import LocalStorage
from tests.contracts.repository import make_execution
from tests.ha.test_queue_kafka import kafka_queue_settings
from tests.infra.waiting import wait_until
from webserver.app import create_app

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

HELLO = """\
id: hello
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


class _Down:
    """A repository that fails every call while ``down`` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.down:
                raise RepositoryError("Elasticsearch unavailable: test")
            return attr(*args, **kwargs)

        return call


class World:
    def __init__(self, client: TestClient, queue: Queue, executions: _Down, flows: _Down) -> None:
        self.client = client
        self.queue = queue
        self.executions = executions
        self.flows = flows
        self.orders = queue.subscribe([EXECUTOR], "test-orders")

    def down(self, is_down: bool = True) -> None:
        self.executions.down = is_down
        self.flows.down = is_down

    def orders_of(self, execution_id: str, count: int) -> list[Any]:
        seen: list[Any] = []

        def enough() -> bool:
            for record in self.orders.poll(500, 0.2):
                if record.key == execution_id and record.value is not None:
                    seen.append(EXECUTOR_INPUT.validate_json(record.value))
            return len(seen) >= count

        wait_until(enough, 30, f"{count} orders for {execution_id} on `executor`")
        return seen


@pytest.fixture
def world(kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path) -> Iterator[World]:
    yield from _world(kafka_bootstrap_servers, unique_name, tmp_path, auth=None)


AUTH = {
    "enabled": True,
    "token_secret": "writes-kafka-secret-0123456789abcdef0123",
    "users": [
        {"username": "ops", "password": "ops-pw", "role": "editor", "tenants": ["main"]},
        {"username": "acme", "password": "acme-pw", "role": "editor", "tenants": ["acme"]},
    ],
}


@pytest.fixture
def secured_world(
    kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path
) -> Iterator[World]:
    yield from _world(kafka_bootstrap_servers, unique_name, tmp_path, auth=AUTH)


def _world(
    kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path, auth: dict[str, Any] | None
) -> Iterator[World]:
    prefix = unique_name + "."
    settings_dict = kafka_queue_settings(kafka_bootstrap_servers, prefix)
    if auth is not None:
        settings_dict["auth"] = auth
    settings = Settings(**settings_dict, data_dir=tmp_path)
    queue = create_queue(settings)
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    inner = sqlite_repositories(db)
    executions, flows = _Down(inner.executions), _Down(inner.flows)
    repositories = Repositories(
        flows=flows,  # type: ignore[arg-type]
        executions=executions,  # type: ignore[arg-type]
        logs=inner.logs,
        metrics=inner.metrics,
        workers=inner.workers,
        triggers=inner.triggers,
    )
    source = TopicFlowSource(kafka_bootstrap_servers, topic_name("flows", prefix))
    source.start()
    backends = Backends(queue, repositories, LocalStorage(tmp_path / "storage"), settings, source)
    token_store = SqliteTokenStore(db) if auth is not None else None
    app = create_app(settings, backends, token_store=token_store)
    with TestClient(app, raise_server_exceptions=False) as client:
        made = World(client, queue, executions, flows)
        yield made
        made.orders.close()
    source.stop()
    queue.close()
    db.close()


def test_creation_needs_neither_the_repository_nor_its_flows(world: World) -> None:
    deployed = world.client.post(
        "/api/v1/flows", content=HELLO, headers={"Content-Type": "application/x-yaml"}
    )
    assert deployed.status_code == 200, deployed.text
    world.down()
    created = world.client.post("/api/v1/executions/company.team/hello")
    assert created.status_code == 200, created.text
    execution_id = created.json()["id"]
    (order,) = world.orders_of(execution_id, 1)
    assert isinstance(order, NewExecution) and order.execution.flow_revision == 1
    # the failed store opened the breaker: the next creations do not even try
    calls = world.executions.calls
    for _ in range(3):
        assert world.client.post("/api/v1/executions/company.team/hello").status_code == 200
    assert world.executions.calls == calls
    # reads answer 503, never 500
    assert world.client.get(f"/api/v1/executions/{execution_id}").status_code == 503
    assert world.client.get("/api/v1/flows/company.team/hello").status_code == 503
    # an unknown flow is still a 404: the topic says so
    assert world.client.post("/api/v1/executions/company.team/nope").status_code == 404


def test_orders_are_sent_unchecked_while_the_repository_is_down(world: World) -> None:
    stored = make_execution("e1", state=State.PAUSED)
    world.executions.inner.save(stored)
    world.down()
    kill = world.client.delete("/api/v1/executions/e1/kill")
    resume = world.client.post("/api/v1/executions/e1/resume", data={"answer": "yes"})
    restart = world.client.post("/api/v1/executions/e1/restart")
    for answer in (kill, resume, restart):
        assert answer.status_code == 202, answer.text
        assert "not checked" in answer.json()["message"]
    orders = world.orders_of("e1", 3)
    assert [type(o) for o in orders] == [Kill, Resume, Restart]
    assert orders[1].inputs == {"answer": "yes"}
    # files need the state (their path names the flow): 503 until the repository is back
    with_file = world.client.post(
        "/api/v1/executions/e1/resume", files={"doc": ("a.txt", b"hello")}
    )
    assert with_file.status_code == 503


def test_with_auth_orders_carry_the_tenant_while_the_repository_is_down(
    secured_world: World,
) -> None:
    """Auth on, Elasticsearch down: kill, resume and restart are not refused (503) but sent
    unchecked with the tenant the credential was authorized for; the executor applies such an
    order only to an execution of that tenant (tests/executor/test_core_lifecycle.py::
    test_an_order_naming_another_tenant_changes_nothing). A credential of another tenant gets
    404 on main's path, and its own path's order names its own tenant."""
    world = secured_world
    world.executions.inner.save(make_execution("e1", state=State.PAUSED))
    world.down()
    ops, acme = ("ops", "ops-pw"), ("acme", "acme-pw")
    assert world.client.delete("/api/v1/executions/e1/kill").status_code == 401
    assert world.client.delete("/api/v1/executions/e1/kill", auth=acme).status_code == 404
    answers = [
        world.client.delete("/api/v1/executions/e1/kill", auth=ops),
        world.client.post("/api/v1/executions/e1/resume", data={"answer": "y"}, auth=ops),
        world.client.post("/api/v1/executions/e1/restart", auth=ops),
        world.client.delete("/api/v1/executions/e1/actions/kill", auth=ops),
        world.client.delete("/api/v1/acme/executions/e1/kill", auth=acme),
    ]
    for answer in answers:
        assert answer.status_code == 202, answer.text
        assert "not checked" in answer.json()["message"]
    orders = world.orders_of("e1", 5)
    assert [type(o) for o in orders] == [Kill, Resume, Restart, Kill, Kill]
    assert [o.tenant_id for o in orders] == ["main", "main", "main", "main", "acme"]


def test_orders_are_checked_when_the_repository_answers(world: World) -> None:
    world.executions.inner.save(make_execution("done", state=State.SUCCESS))
    assert world.client.delete("/api/v1/executions/done/kill").status_code == 409
    # Kestra's restart rule (``_orders.restart``): nothing FAILED or PAUSED in it -> 422
    assert world.client.post("/api/v1/executions/done/restart").status_code == 422
    assert world.client.post("/api/v1/executions/done/resume").status_code == 409
    assert world.client.delete("/api/v1/executions/nobody/kill").status_code == 404


def test_follow_streams_the_topic_while_the_repository_is_down(world: World) -> None:
    world.down()
    running = make_execution("f1", state=State.RUNNING, sequence=3)
    ended = make_execution("f1", state=State.SUCCESS, sequence=4)
    with world.client.stream("GET", "/api/v1/executions/f1/follow") as stream:
        assert stream.status_code == 200
        world.queue.emit(EXECUTIONS, "f1", running.to_json())
        world.queue.emit(EXECUTIONS, "f1", ended.to_json())
        states = [
            json.loads(line.removeprefix("data:"))["state"]["current"]
            for line in stream.iter_lines()
            if line.startswith("data:")
        ]
    assert states == ["RUNNING", "SUCCESS"]
