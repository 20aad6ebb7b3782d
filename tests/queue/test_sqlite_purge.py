"""The embedded queue does not grow without bound: ``lanner server local`` purges, in the
background, the records every consumer group has committed (issue 6: ``SqliteQueue.purge`` was
never called, so the table kept every record ever emitted)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import httpx

from common.queue.base import ALL_TOPICS
from tests.bench._server import LocalServer
from tests.infra.processes import ManagedProcess, http_ok
from tests.infra.waiting import wait_until

NAMESPACE = "lanner.purge"
EXECUTIONS = 60
RETAIN = 5  # records kept per partition however old: the safety margin
PARTITIONS = 4
FLOW = f"""\
id: chatty
namespace: {NAMESPACE}
tasks:
  - id: one
    type: io.kestra.plugin.core.log.Log
    message: one
  - id: two
    type: io.kestra.plugin.core.log.Log
    message: two
  - id: three
    type: io.kestra.plugin.core.debug.Return
    format: three
"""


def _records(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM queue_records").fetchone()[0])
    finally:
        conn.close()


def _ended(client: httpx.Client, label: str) -> int:
    response = client.get(
        "/api/v1/executions/search",
        params={"labels": f"purge:{label}", "state": "SUCCESS", "size": 1000},
    )
    response.raise_for_status()
    return len(response.json()["results"])


def test_consumed_records_are_purged_in_the_background(tmp_path: Path) -> None:
    server = LocalServer(tmp_path)
    process = ManagedProcess(
        "lanner server local",
        server.argv(),
        server.log_path,
        env={
            "LANNER_QUEUE_RETAIN_RECORDS": str(RETAIN),
            "LANNER_QUEUE_PARTITIONS": str(PARTITIONS),
            "LANNER_QUEUE_PURGE_INTERVAL_SECONDS": "0.2",
        },
    ).start()
    db = tmp_path / "data" / "lanner.db"
    label = uuid.uuid4().hex[:12]
    try:
        process.wait_for(lambda: http_ok(f"{server.url}/health/ready"), 60, "the API to answer")
        with httpx.Client(base_url=server.url, timeout=30) as client:
            client.post(
                "/api/v1/flows", content=FLOW, headers={"content-type": "application/x-yaml"}
            ).raise_for_status()
            for _ in range(EXECUTIONS):
                client.post(
                    f"/api/v1/executions/{NAMESPACE}/chatty", params={"labels": f"purge:{label}"}
                ).raise_for_status()
            process.wait_for(
                lambda: _ended(client, label) == EXECUTIONS, 120, "every execution to end"
            )
        # whatever the load, what stays is at most a margin per partition of each topic
        bound = RETAIN * PARTITIONS * len(ALL_TOPICS)
        assert EXECUTIONS * 10 > bound  # the load emitted more than the bound: it can fail
        wait_until(
            lambda: _records(db) <= bound,
            30,
            f"the queue table to be purged down to {bound} records",
            diagnose=lambda: f"{_records(db)} records left",
        )
    finally:
        process.stop()
