"""schemathesis against the app's own OpenAPI document (``/api/openapi.json``), in process (ASGI)
on the embedded backends (SQLite queue and repositories in a temporary directory).

For every operation, generated requests (valid and invalid) never get a 5xx, and every response
whose status the document declares matches its schema and content type. The live streams
(``/follow``) never end by design and are left out. Deterministic (``derandomize``) and bounded
(``MAX_EXAMPLES`` per operation); the conftest prints the operation and example counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from common.backends import Backends
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from common.storage.local import LocalStorage
from webserver.app import create_app, stop_live_feeds

MAX_EXAMPLES = 8
# what ran, for the conftest's summary line
OPERATIONS: set[str] = set()
EXAMPLES = {"count": 0}

FLOW = """\
id: hello
namespace: company.team
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.name }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cr3t
"""


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    tmp_path = tmp_path_factory.mktemp("schemathesis")
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    queue = SqliteQueue(db)
    backends = Backends(
        queue=queue,
        repositories=sqlite_repositories(db),
        storage=LocalStorage(tmp_path / "storage"),
        settings=Settings(data_dir=tmp_path),
    )
    app = create_app(backends.settings, backends)
    yield app
    stop_live_feeds(app)
    queue.close()
    db.close()


@pytest.fixture(scope="module")
def api_schema(api_app: FastAPI) -> schemathesis.BaseSchema:
    from fastapi.testclient import TestClient

    with TestClient(api_app) as client:  # one flow, so that some generated ids exist
        client.post(
            "/api/v1/flows", content=FLOW, headers={"Content-Type": "application/x-yaml"}
        ).raise_for_status()
    return schemathesis.openapi.from_asgi("/api/openapi.json", api_app)


# the live streams answer until the client leaves: each example would wait for a timeout
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"/follow$")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_are_never_5xx_and_match_the_schema(case: schemathesis.Case) -> None:
    OPERATIONS.add(case.operation.label)
    EXAMPLES["count"] += 1
    case.call_and_validate(
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance]
    )


def test_a_download_named_by_any_id_has_a_valid_header(api_app: FastAPI) -> None:
    """Found by schemathesis: a non-latin-1 id in the URL made the download's header a 500."""
    from fastapi.testclient import TestClient

    with TestClient(api_app) as client:
        response = client.get('/api/v1/logs/\U00013791"x/download')
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"__x.log\"; filename*=UTF-8''%F0%93%9E%91%22x.log"
    )
