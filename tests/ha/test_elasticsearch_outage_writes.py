"""Writes through the API while Elasticsearch is frozen (SIGSTOP) for 40 s, on a deployment of
real processes (executor, worker, webserver with its indexer) on Kafka and Elasticsearch.

Done-when of issue 8: every creation succeeds, no 500 is answered (reads may answer 503), and
within 60 s of the node's return every execution is searchable with its final state. A follow
stream opened during the outage sees its execution end; a kill sent during the outage is
accepted (the executor decides whether it applies).

The frozen-node test runs with authentication on (issue 13): the orders sent unchecked carry the
tenant the credential was authorized for, and the executor leaves an execution of another
tenant alone (a kill through tenant ``acme``'s path of ``main``'s execution id changes nothing).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.bench._flows import BENCHMARK01, NAMESPACE
from tests.infra.deployment import KafkaDeployment
from tests.infra.elasticsearch import ElasticsearchCluster, drop_indices
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch, pytest.mark.timeout(600)]

OUTAGE_SECONDS = 40.0
CATCH_UP_SECONDS = 60.0
RATE = 4.0  # creations per second, from two clients
TERMINAL = ("SUCCESS", "FAILED", "KILLED", "WARNING", "CANCELLED")
OPS = ("ops", "ops-pw")  # an editor of tenant main
ACME = ("acme", "acme-pw")  # an editor of tenant acme only
AUTH_ENV = {
    "LANNER_AUTH__ENABLED": "true",
    "LANNER_AUTH__TOKEN_SECRET": "outage-writes-secret-0123456789abcdef012",
    "LANNER_AUTH__USERS": json.dumps(
        [
            {"username": "ops", "password": "ops-pw", "role": "editor", "tenants": ["main"]},
            {"username": "acme", "password": "acme-pw", "role": "editor", "tenants": ["acme"]},
        ]
    ),
}
SLOW = f"""\
id: slow
namespace: {NAMESPACE}
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT8S
"""


@pytest.fixture
def node(elasticsearch_to_freeze: ElasticsearchCluster) -> ElasticsearchCluster:
    """A node apart from the session's (tests/infra/fixtures.py): freezing it must not stall the
    other tests' node."""
    return elasticsearch_to_freeze


@contextmanager
def _deployment(
    urls: list[str],
    servers: str,
    unique_name: str,
    tmp_path: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[KafkaDeployment]:
    prefix = unique_name + "_"
    env = {
        **(extra_env or {}),
        "LANNER_REPOSITORY": "elasticsearch",
        "LANNER_ELASTICSEARCH_URL": ",".join(urls),
        "LANNER_ELASTICSEARCH_INDEX_PREFIX": prefix,
        "LANNER_ELASTICSEARCH_REQUEST_TIMEOUT_SECONDS": "3",
    }
    made = KafkaDeployment(servers, unique_name + ".", tmp_path, env=env)
    try:
        yield made.start()
    finally:
        made.stop()
        from common.repository.elasticsearch_client import create_client

        client = create_client(urls)
        try:
            drop_indices(client, prefix)
        finally:
            client.close()


@pytest.fixture
def deployment(
    node: ElasticsearchCluster, kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path
) -> Iterator[KafkaDeployment]:
    with _deployment([node.url], kafka_bootstrap_servers, unique_name, tmp_path, AUTH_ENV) as made:
        yield made


class Load:
    """Clients creating executions at a steady pace until stopped; every answer is counted."""

    def __init__(self, url: str, label: str, auth: tuple[str, str] | None = None) -> None:
        self.url = url
        self.auth = auth
        self.label = label
        self.created: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(2)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, index: int) -> None:
        interval = len(self._threads) / RATE
        with httpx.Client(base_url=self.url, timeout=60, auth=self.auth) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    answer = client.post(
                        f"/api/v1/executions/{NAMESPACE}/benchmark01",
                        params={"labels": f"load:{self.label}"},
                        files={"name": (None, f"client{index}")},
                    )
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        self.created.append(answer.json()["id"])
                    else:
                        self.errors.append(f"{answer.status_code} {answer.text[:300]}")
                # pacing of the load, not a synchronisation
                self._stop.wait(max(0.0, interval - (time.monotonic() - began)))


def _follow_until_terminal(url: str, execution_id: str, seen: list[str]) -> None:
    timeout = httpx.Timeout(10, read=120)
    with httpx.Client(base_url=url, timeout=timeout, auth=OPS) as client:
        with client.stream("GET", f"/api/v1/executions/{execution_id}/follow") as stream:
            seen.append(f"status {stream.status_code}")
            for line in stream.iter_lines():
                if line.startswith("data:") and any(f'"{s}"' in line for s in TERMINAL):
                    if '"current":"SUCCESS"' in line.replace(" ", ""):
                        seen.append("SUCCESS")
                        return


def _next_creation(load: Load, what: str) -> None:
    """Reads are paced by the load: one round of reads per execution created."""
    seen = len(load.created)
    wait_until(lambda: len(load.created) > seen, 30, what)


def test_creations_kill_and_follow_work_while_elasticsearch_is_frozen(
    deployment: KafkaDeployment, node: ElasticsearchCluster, unique_name: str
) -> None:
    api = httpx.Client(base_url=deployment.url, timeout=60, auth=OPS)
    deployed = api.post(
        "/api/v1/flows", content=BENCHMARK01, headers={"Content-Type": "application/x-yaml"}
    )
    assert deployed.status_code == 200, deployed.text
    deployed = api.post(
        "/api/v1/flows", content=SLOW, headers={"Content-Type": "application/x-yaml"}
    )
    assert deployed.status_code == 200, deployed.text
    load = Load(deployment.url, unique_name, OPS)
    pid = node.server_pid(1)
    assert pid is not None
    read_statuses: Counter[int] = Counter()
    followed: list[str] = []
    # the webserver's management port: what an orchestrator probes for readiness
    web_log = deployment.processes["webserver"].log_path

    def management_port() -> re.Match[str] | None:
        return re.search(r"management port (\d+)", web_log.read_text(errors="replace"))

    wait_until(management_port, 60, "the webserver's start line")
    management_ready = f"http://127.0.0.1:{management_port().group(1)}/health/ready"  # type: ignore[union-attr]
    ready_statuses: Counter[int] = Counter()
    load.start()
    try:
        wait_until(lambda: len(load.created) >= 10, 60, "the first creations before the outage")
        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            # during the outage: a follow stream, a kill, reads (503 allowed, never 500)
            wait_until(
                lambda: len(load.created) >= 20 and load.statuses[200] >= 20,
                OUTAGE_SECONDS,
                "creations during the outage",
            )
            during = load.created[-1]
            slow = api.post(f"/api/v1/executions/{NAMESPACE}/slow")
            assert slow.status_code == 200, slow.text  # a creation too
            slow_id = slow.json()["id"]
            # tenant acme's credential: main's path is not its own (404); through its own
            # path the kill is accepted unchecked with tenant acme, and the executor leaves
            # main's execution alone: the follower below still sees it SUCCESS
            foreign = f"/api/v1/executions/{slow_id}/kill"
            assert api.delete(foreign, auth=ACME).status_code == 404
            foreign = f"/api/v1/acme/executions/{slow_id}/kill"
            assert api.delete(foreign, auth=ACME).status_code == 202
            follower = threading.Thread(
                target=_follow_until_terminal, args=(deployment.url, slow_id, followed)
            )
            follower.start()
            # auth on: sent unchecked with the tenant (202), not refused (503)
            kill = api.delete(f"/api/v1/executions/{load.created[0]}/kill")
            assert kill.status_code in (202, 409), kill.text
            while time.monotonic() - frozen_at < OUTAGE_SECONDS:
                for path in ("/api/v1/executions/search", f"/api/v1/executions/{during}"):
                    read_statuses[api.get(path).status_code] += 1
                ready_statuses[httpx.get(management_ready, timeout=30).status_code] += 1
                _next_creation(load, "the next creation during the outage")
        finally:
            os.kill(pid, signal.SIGCONT)
        thawed_at = time.monotonic()
        follower.join(60)
        after = len(load.created)
        wait_until(lambda: len(load.created) >= after + 5, 60, "creations after the return")
    finally:
        load.stop()
    assert load.errors == [], load.errors[:5]
    assert set(load.statuses) == {200}, load.statuses
    assert 500 not in read_statuses and set(read_statuses) <= {200, 503}, read_statuses
    assert followed == ["status 200", "SUCCESS"], followed
    # still ready for the orchestrator: taking it out of its Service would stop the writes
    assert set(ready_statuses) == {200}, ready_statuses
    created = list(load.created)
    assert len(created) == len(set(created))

    def all_searchable_and_ended() -> bool:
        try:
            answer = api.get(
                "/api/v1/executions/search",
                params={"labels": f"load:{unique_name}", "state": list(TERMINAL), "size": 1},
            )
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json()["total"] == len(created)

    remaining = CATCH_UP_SECONDS - (time.monotonic() - thawed_at)
    wait_until(all_searchable_and_ended, remaining, "every execution searchable and ended")
    states = _all_final(api, unique_name)  # every one, by id, with its final state
    assert set(states) == set(created)
    killed = created[0]
    assert states[killed] in ("SUCCESS", "KILLED")
    assert {s for i, s in states.items() if i != killed} == {"SUCCESS"}
    api.close()


def _all_final(api: httpx.Client, label: str) -> dict[str, str]:
    """Every execution of the load by id, with its state (pages of 100)."""
    states: dict[str, str] = {}
    after: str | None = None
    while True:
        params: dict[str, object] = {"labels": f"load:{label}", "size": 100}
        if after:
            params["after"] = after
        page = api.get("/api/v1/executions/search", params=params).json()
        states.update({e["id"]: e["state"]["current"] for e in page["results"]})
        after = page.get("next")
        if not after or not page["results"]:
            return states


def test_creations_work_while_a_node_of_three_is_killed(
    elasticsearch_cluster3: ElasticsearchCluster,
    kafka_bootstrap_servers: str,
    unique_name: str,
    tmp_path: Path,
) -> None:
    """The node holding the primary of the executions index is killed (-9) under the load:
    every creation succeeds, no 500, and within 60 s every execution is searchable SUCCESS."""
    from common.repository.elasticsearch_client import create_client

    cluster = elasticsearch_cluster3
    with _deployment(cluster.urls, kafka_bootstrap_servers, unique_name, tmp_path) as made:
        api = httpx.Client(base_url=made.url, timeout=60)
        deployed = api.post(
            "/api/v1/flows", content=BENCHMARK01, headers={"Content-Type": "application/x-yaml"}
        )
        assert deployed.status_code == 200, deployed.text
        index = unique_name + "_executions"
        client = create_client(cluster.urls)
        health = client.cluster.health(index=index, wait_for_status="green", timeout="90s")
        assert health["status"] == "green"
        shards = client.cat.shards(index=index, format="json")
        victim = int(next(s["node"] for s in shards if s["prirep"] == "p").removeprefix("node-"))
        client.close()
        load = Load(made.url, unique_name)
        read_statuses: Counter[int] = Counter()
        load.start()
        try:
            wait_until(lambda: len(load.created) >= 10, 60, "the first creations")
            cluster.kill_node(victim)
            killed_at = time.monotonic()
            while time.monotonic() - killed_at < 20:
                read_statuses[api.get("/api/v1/executions/search").status_code] += 1
                _next_creation(load, "the next creation after the kill")
        finally:
            load.stop()
        assert load.errors == [], load.errors[:5]
        assert set(load.statuses) == {200}, load.statuses
        assert 500 not in read_statuses and set(read_statuses) <= {200, 503}, read_statuses
        created = list(load.created)

        def all_searchable_and_ended() -> bool:
            answer = api.get(
                "/api/v1/executions/search",
                params={"labels": f"load:{unique_name}", "state": "SUCCESS", "size": 1},
            )
            return answer.status_code == 200 and answer.json()["total"] == len(created)

        wait_until(all_searchable_and_ended, 60, "every execution searchable SUCCESS")
        assert set(_all_final(api, unique_name)) == set(created)
        api.close()
    cluster.restart_node(victim)
