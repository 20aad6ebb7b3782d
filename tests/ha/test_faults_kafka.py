"""Faults of a loaded deployment: SIGTERM of an executor and of a worker while two executors
and three workers share the load; a restart of the broker under load. Nothing accepted is
lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from common.models.state import State
from tests.bench._flows import BENCHMARK01, NAMESPACE
from tests.ha.cluster import Cluster
from tests.infra.fixtures import StartLanner
from tests.infra.kafka import KafkaCluster
from tests.infra.processes import free_ports
from tests.infra.prometheus import sample_value
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(900)]


def _metric(port: int, name: str, **labels: str) -> float:
    """One sample of a component's management /metrics (0 when absent or not answering)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    return sample_value(text, name, **labels)


def _ended(cluster: Cluster, at_least: int) -> bool:
    cluster.read()
    return sum(1 for e in cluster.latest.values() if e.state.current.terminal) >= at_least


def test_sigterm_of_an_executor_and_of_a_worker_under_shared_load_fails_nothing(
    cluster: Cluster, lanner_process: StartLanner
) -> None:
    ports = dict(zip(["e1", "e2", "w1", "w2", "w3"], free_ports(5), strict=True))

    def env(name: str) -> dict[str, str]:
        return {**cluster.env(name), "LANNER_METRICS_PORT": str(ports[name])}

    executors = [
        lanner_process(["server", "executor"], env=env(f"e{i}"), name=f"executor-e{i}")
        for i in (1, 2)
    ]
    workers = [
        lanner_process(["server", "worker"], env=env(f"w{i}"), name=f"w{i}") for i in (1, 2, 3)
    ]
    cluster.deploy(BENCHMARK01)
    ids = [cluster.create(NAMESPACE, "benchmark01", f"shared-{i:03d}") for i in range(300)]
    wait_until(lambda: _ended(cluster, 50), 300, "50 executions ended")
    # the spread is visible in metrics: every process holds some partitions, none is left out
    executor_partitions = cluster.queue.partitions("executor")
    task_partitions = cluster.queue.partitions("worker-tasks")

    def spread() -> dict[str, float]:
        held = {
            e: _metric(ports[e], "lanner_executor_partitions", topic="executor")
            for e in ("e1", "e2")
        }
        held |= {
            w: _metric(ports[w], "lanner_worker_task_partitions", worker=w)
            for w in ("w1", "w2", "w3")
        }
        return held

    def spread_out() -> bool:
        held = spread()
        return (
            all(n > 0 for n in held.values())
            and held["e1"] + held["e2"] == executor_partitions
            and held["w1"] + held["w2"] + held["w3"] == task_partitions
        )

    wait_until(spread_out, 60, "every executor and worker to report its partitions (metrics)")
    executors[0].stop()  # SIGTERM: its partitions move to the other executor
    workers[0].stop()  # SIGTERM: drains, then hands back what still runs
    ended = cluster.wait_ended(ids, timeout=600)
    assert [i for i, e in ended.items() if e.state.current != State.SUCCESS] == []
    assert executors[0].returncode == 0 and workers[0].returncode == 0
    # the load was shared: every remaining worker ran some of it
    ran_on = {tr.attempts[-1].worker_id for e in ended.values() for tr in e.task_run_list}
    assert {"w2", "w3"} <= ran_on, ran_on


def test_a_broker_restart_under_load_delays_executions_but_loses_none(
    tmp_path: Path, unique_name: str, lanner_process: StartLanner, infra: Any
) -> None:
    broker: KafkaCluster = infra.kafka(1)  # its own broker: this test restarts it
    cluster = Cluster(broker.bootstrap_servers, unique_name + ".", tmp_path)
    try:
        lanner_process(["server", "executor"], env=cluster.env("e1"), name="executor-e1")
        worker_env = {**cluster.env("w1"), "LANNER_WORKER_DEAD_AFTER_SECONDS": "30"}
        worker = lanner_process(["server", "worker"], env=worker_env, name="worker-w1")
        cluster.deploy(BENCHMARK01)
        ids = [cluster.create(NAMESPACE, "benchmark01", f"restart-{i:03d}") for i in range(200)]
        wait_until(lambda: _ended(cluster, 20), 300, "20 executions ended before the restart")
        node = broker.nodes[0].node_id
        broker.stop_node(node)
        broker.restart_node(node)
        # the only worker exiting means nothing more can end: fail then, with its log, rather
        # than at the 600 s deadline
        worker.wait_for(lambda: _ended(cluster, len(ids)), 600, f"the {len(ids)} executions to end")
        ended = cluster.wait_ended(ids)
        assert [i for i, e in ended.items() if e.state.current != State.SUCCESS] == []
        assert worker.running, "the worker exited after the broker restart"
    finally:
        cluster.close()
