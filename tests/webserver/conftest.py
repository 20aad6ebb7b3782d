"""An app on real backends: the SQLite queue in a temporary directory, the repositories on
SQLite or Elasticsearch (``@both_repositories``, ``LANNER_TEST_REPOSITORY``); helpers to read
the queue."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from common.backends import Backends
from common.ids import new_id
from common.models.messages import EXECUTOR_INPUT, ExecutorInput
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from common.storage.local import LocalStorage
from webserver.app import create_app, stop_live_feeds

HELLO = """\
id: hello
namespace: company.team
labels:
  team: data
inputs:
  - id: name
    type: STRING
    defaults: world
  - id: count
    type: INT
    required: false
  - id: data
    type: FILE
    required: false
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.name }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cr3t
"""


# the repository of the tests not marked ``@both_repositories``: LANNER_TEST_REPOSITORY=
# elasticsearch runs the whole suite on Elasticsearch
REPOSITORY_ENV = "LANNER_TEST_REPOSITORY"

# Runs a test once per repository backend: ``@both_repositories`` on the tests of the read paths
# (searches, get, flows, logs, triggers), which must give the same answers on both.
both_repositories = pytest.mark.parametrize(
    "backends",
    ["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)],
    indirect=True,
)


# a test that reaches into the SQLite database itself
sqlite_only = pytest.mark.parametrize("backends", ["sqlite"], indirect=True)


@pytest.fixture
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backends]:
    """SQLite queue and storage in ``tmp_path``; the repositories on SQLite, or (parameter
    ``elasticsearch``) on the session's Elasticsearch node in indices of this test's own, every
    write refreshed so that the test reads it back at once."""
    name = getattr(request, "param", os.environ.get(REPOSITORY_ENV, "sqlite"))
    assert name in ("sqlite", "elasticsearch"), f"{REPOSITORY_ENV}={name}?"
    repository: Literal["sqlite", "elasticsearch"] = (
        "elasticsearch" if name == "elasticsearch" else "sqlite"
    )
    settings = Settings(data_dir=tmp_path, repository=repository)
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    queue = SqliteQueue(db)
    cleanup = None
    if repository == "elasticsearch":
        from common.repository.elasticsearch import elasticsearch_repositories
        from common.repository.elasticsearch_client import create_client
        from tests.infra.elasticsearch import drop_indices

        client = create_client(request.getfixturevalue("elasticsearch_url"))
        prefix = request.getfixturevalue("unique_name") + "_"
        repositories = elasticsearch_repositories(client, prefix, refresh=True)

        def cleanup() -> None:
            drop_indices(client, prefix)
            client.close()

    else:
        repositories = sqlite_repositories(db)
    yield Backends(
        queue=queue,
        repositories=repositories,
        storage=LocalStorage(tmp_path / "storage"),
        settings=settings,
    )
    queue.close()
    db.close()
    if cleanup is not None:
        cleanup()


@pytest.fixture
def app(backends: Backends) -> FastAPI:
    return create_app(backends.settings, backends)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def hello(client: TestClient) -> dict[str, Any]:
    response = client.post(
        "/api/v1/flows", content=HELLO, headers={"Content-Type": "application/x-yaml"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def topic_records(backends: Backends, topic: str) -> list[tuple[str | None, bytes | None]]:
    """Everything on ``topic`` so far (a fresh group reading from the start)."""
    subscription = backends.queue.subscribe([topic], f"test-{topic}-{new_id()}")
    out: list[tuple[str | None, bytes | None]] = []
    while True:
        records = subscription.poll(max_records=1000, timeout=0)
        if not records:
            break
        out += [(r.key, r.value) for r in records]
    subscription.close()
    return out


def executor_inputs(backends: Backends) -> list[ExecutorInput]:
    return [
        EXECUTOR_INPUT.validate_json(value)
        for _, value in topic_records(backends, "executor")
        if value is not None
    ]


def flow_events(backends: Backends) -> list[dict[str, Any]]:
    return [json.loads(v) for _, v in topic_records(backends, "flows") if v is not None]


@pytest.fixture
def server(app: FastAPI) -> Iterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        threading.Event().wait(0.01)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    stop_live_feeds(app)  # lifespan is off: stop the follow streams' consumers here
