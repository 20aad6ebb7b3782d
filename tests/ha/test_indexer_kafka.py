"""The indexer on Kafka: its lag metric, and a kill -9 of ``lanner server indexer`` under a load
of executions created through the API (executor, worker, webserver without indexer, indexer:
real processes on Kafka and Elasticsearch). After the restart nothing is missing and nothing is
doubled: every execution is searchable with its final state, and each has its one log line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.repository.base import Repositories
from common.repository.sqlite import sqlite_repositories
from indexer import Indexer
from tests.bench._flows import BENCHMARK01
from tests.contracts.queue import open_queue
from tests.ha.test_elasticsearch_outage_writes import TERMINAL, Load
from tests.ha.test_queue_kafka import kafka_queue_settings
from tests.indexer.test_indexer import _emit_logs, _sample
from tests.infra.deployment import READY_SECONDS, KafkaDeployment
from tests.infra.elasticsearch import drop_indices
from tests.infra.processes import ManagedProcess, free_ports, http_ok, start_lanner
from tests.infra.prometheus import sample_value
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


class _Switch:
    """A repository that fails every write until ``up`` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.up = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in ("save", "save_many", "save_json_many"):
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            if not self.up:
                raise RuntimeError("repository down")
            return attr(*args, **kwargs)

        return write


def test_the_lag_grows_while_the_repository_is_down_and_falls_to_zero_after(
    kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path
) -> None:
    from common.queue.sqlite import SqliteDatabase

    settings = kafka_queue_settings(kafka_bootstrap_servers, unique_name + ".")
    queue = open_queue(settings)
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    repositories = sqlite_repositories(db)
    logs = _Switch(repositories.logs)
    switched = Repositories(
        flows=repositories.flows,
        executions=repositories.executions,
        logs=logs,  # type: ignore[arg-type]
        metrics=repositories.metrics,
        workers=repositories.workers,
        triggers=repositories.triggers,
    )
    _emit_logs(queue, 30, "lag")  # type: ignore[arg-type]
    indexer = Indexer(
        queue, switched, group=unique_name, poll_timeout=0.1, initial_backoff=0.05, max_backoff=0.2
    )
    indexer.start()
    try:
        # the lag is exported at each poll, possibly before the first write has failed: wait
        # for both
        wait_until(
            lambda: (
                _sample("lanner_indexer_lag_records", topic="logs") == 30 and indexer.failures > 0
            ),
            60,
            "a lag of 30 log records and a failed write while the repository is down",
        )
        assert indexer.indexed == 0
        logs.up = True
        wait_until(lambda: indexer.indexed == 30, 60, "the 30 records written")
        wait_until(
            lambda: _sample("lanner_indexer_lag_records", topic="logs") == 0,
            60,
            "the lag back to 0",
        )
    finally:
        indexer.stop()
        queue.close()
        db.close()
    assert _sample("lanner_indexer_lag_records", topic="executions") == 0
    assert all(len(repositories.logs.find("main", f"lag{i}")) == 1 for i in range(30))


@pytest.fixture
def deployment(
    elasticsearch_url: str, kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path
) -> Iterator[KafkaDeployment]:
    prefix = unique_name + "_"
    env = {
        "LANNER_REPOSITORY": "elasticsearch",
        "LANNER_ELASTICSEARCH_URL": elasticsearch_url,
        "LANNER_ELASTICSEARCH_INDEX_PREFIX": prefix,
    }
    made = KafkaDeployment(kafka_bootstrap_servers, unique_name + ".", tmp_path, env=env)
    try:
        made.init_topics()
        made.start_component("executor", "executor-1")
        made.start_component("worker", "worker-1")
        web = made.start_component(
            "webserver", "webserver", "--port", str(made.port), "--no-indexer"
        )
        web.wait_for(lambda: http_ok(made.url + "/health/ready"), READY_SECONDS, "ready")
        yield made
    finally:
        made.stop()
        from common.repository.elasticsearch_client import create_client

        client = create_client(elasticsearch_url)
        drop_indices(client, prefix)
        client.close()


def _start_indexer(deployment: KafkaDeployment, name: str, port: int) -> ManagedProcess:
    env = {**deployment.env(name), "LANNER_METRICS_PORT": str(port)}
    proc = start_lanner(
        ["server", "indexer"],
        deployment.base / "logs" / f"{name}.log",
        env=env,
        cwd=deployment.base,
        name=name,
    )
    deployment.processes[name] = proc
    proc.wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/health/ready"), READY_SECONDS, "ready")
    return proc


def _metric(port: int, name: str, **labels: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return -1.0
    return sample_value(text, name, **labels)


def test_an_indexer_killed_under_load_restarts_with_nothing_missing_or_doubled(
    deployment: KafkaDeployment, unique_name: str
) -> None:
    api = httpx.Client(base_url=deployment.url, timeout=60)
    deployed = api.post(
        "/api/v1/flows", content=BENCHMARK01, headers={"Content-Type": "application/x-yaml"}
    )
    assert deployed.status_code == 200, deployed.text
    (port,) = free_ports(1)
    first = _start_indexer(deployment, "indexer-1", port)
    load = Load(deployment.url, unique_name)
    load.start()
    try:
        # kill -9 once the indexer has written part of the load
        wait_until(
            lambda: _metric(port, "lanner_indexer_records_total", topic="logs") >= 20,
            120,
            "the indexer writing the first logs",
        )
        first.kill()
        before_restart = len(load.created)
        wait_until(
            lambda: len(load.created) >= before_restart + 10, 60, "creations while it is dead"
        )
        _start_indexer(deployment, "indexer-2", port)
        wait_until(lambda: len(load.created) >= before_restart + 30, 60, "more creations")
    finally:
        load.stop()
    assert set(load.statuses) == {200}, (load.statuses, load.errors[:5])
    created = list(load.created)
    assert len(created) == len(set(created))

    def all_ended() -> bool:
        answer = api.get(
            "/api/v1/executions/search",
            params={"labels": f"load:{unique_name}", "state": list(TERMINAL), "size": 1},
        )
        return answer.status_code == 200 and answer.json()["total"] == len(created)

    wait_until(all_ended, 120, "every execution searchable and ended")

    def logs_of(execution_id: str) -> list[dict[str, Any]]:
        answer = api.get(f"/api/v1/logs/{execution_id}")
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    def every_log_there() -> bool:
        return all(len(logs_of(i)) >= 1 for i in created)

    wait_until(every_log_there, 120, "the log line of every execution")
    doubled = {i: len(logs_of(i)) for i in created if len(logs_of(i)) != 1}
    assert doubled == {}
    found = api.get(
        "/api/v1/executions/search",
        params={"labels": f"load:{unique_name}", "state": "SUCCESS", "size": 1},
    ).json()
    assert found["total"] == len(created)
    wait_until(
        lambda: _metric(port, "lanner_indexer_lag_records", topic="executions") == 0,
        60,
        "the restarted indexer's lag back to 0",
    )
    api.close()
