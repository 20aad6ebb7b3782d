"""`lanner server webserver` on Kafka and Elasticsearch, as a real process: the indexer inside it
fills Elasticsearch from the topics, and the API reads executions, flows and logs from there.

As in test_webserver_kafka, the executor is not running: the test writes the snapshots it would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from common.models.messages import LogEntry
from common.models.state import State
from common.queue.base import EXECUTIONS, LOGS, Queue
from common.repository.elasticsearch_client import create_client
from tests.ha.test_webserver_kafka import DEADLINE, HELLO, snapshot, start, wait_state
from tests.ha.test_webserver_kafka import env as env  # noqa: F401 - fixtures of this module too
from tests.ha.test_webserver_kafka import queue as queue  # noqa: F401
from tests.infra.elasticsearch import drop_indices
from tests.infra.fixtures import StartLanner
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.timeout(300)]


@pytest.fixture
def es_env(env: dict[str, Any], elasticsearch_url: str, unique_name: str) -> Iterator[dict]:
    prefix = unique_name + "_"
    yield {
        **env,
        "repository": "elasticsearch",
        "elasticsearch_url": elasticsearch_url,
        "index_prefix": prefix,
    }
    client = create_client(elasticsearch_url)
    drop_indices(client, prefix)
    client.close()


def test_the_api_reads_what_the_indexer_inside_wrote_to_elasticsearch(
    lanner_process: StartLanner, es_env: dict[str, Any], queue: Queue
) -> None:
    web = start(lanner_process, es_env, "webserver")
    web.wait_ready()
    assert "repository elasticsearch" in web.start_line("webserver")
    with httpx.Client(base_url=web.api, timeout=30) as api:
        created_flow = api.post(
            "/api/v1/flows", content=HELLO, headers={"Content-Type": "application/x-yaml"}
        )
        assert created_flow.status_code == 200, created_flow.text
        assert api.get("/api/v1/flows/company.team/hello").json()["revision"] == 1
        found = api.get("/api/v1/flows/search", params={"namespace": "company"}).json()
        assert [f["id"] for f in found["results"]] == ["hello"]

        created = api.post("/api/v1/executions/company.team/hello")
        assert created.status_code == 200, created.text
        execution_id = created.json()["id"]
        assert api.get(f"/api/v1/executions/{execution_id}").status_code == 200  # realtime GET

        queue.emit(EXECUTIONS, execution_id, snapshot(api, execution_id, State.PAUSED, 5))
        wait_state(api, execution_id, State.PAUSED)
        stale = snapshot(api, execution_id, State.RUNNING, 2)
        queue.emit(EXECUTIONS, execution_id, stale)  # an older snapshot, replayed: ignored
        entry = LogEntry(
            namespace="company.team",
            flow_id="hello",
            execution_id=execution_id,
            timestamp=datetime.now(UTC),
            message="hello from the indexer",
        )
        queue.emit(LOGS, execution_id, entry.to_json())

        def searchable() -> bool:
            logs = api.get("/api/v1/logs/search", params={"q": "indexer"}).json()
            paused = api.get(
                "/api/v1/executions/search", params={"state": "PAUSED", "q": execution_id}
            ).json()
            return logs["total"] == 1 and [e["id"] for e in paused["results"]] == [execution_id]

        wait_until(searchable, DEADLINE, "the execution and its log searchable")
        assert api.get(f"/api/v1/executions/{execution_id}").json()["state"]["current"] == "PAUSED"
        logs = api.get(f"/api/v1/logs/{execution_id}").json()
        assert [e["message"] for e in logs] == ["hello from the indexer"]
