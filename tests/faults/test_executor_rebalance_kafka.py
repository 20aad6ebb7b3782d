"""The Faust executor across rebalances under a steady load: every accepted execution ends.

Reproductions of the two executor defects of the fault suite (notes/issue-13.md): an execution
held after a kill -9 of one of two executors, and executors that never commit again after a
broker restart. Executions are created on the ``executor`` topic at a steady rate (as the
webserver does) by a thread, across the fault, and each must reach a terminal state.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from common.cli.server_kafka import WORKER_CUT_OFF_EXIT
from common.errors import QueueError
from common.queue.base import EXECUTOR
from tests.ha.cluster import Cluster, flow
from tests.infra.fixtures import StartLanner
from tests.infra.processes import ManagedProcess
from tests.infra.waiting import WaitTimeout, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.faults, pytest.mark.timeout(600)]

FLOW = flow(
    """
    tasks:
      - id: r
        type: io.kestra.plugin.core.debug.Return
        format: "{{ execution.id }}"
      - id: l1
        type: io.kestra.plugin.core.log.Log
        message: "one {{ execution.id }}"
      - id: l2
        type: io.kestra.plugin.core.log.Log
        message: "two {{ execution.id }}"
    """,
    "steady",
)


@pytest.fixture
def cluster(kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(kafka_bootstrap_servers, unique_name + ".", tmp_path)
    yield made
    made.close()


class Load:
    """Creates executions at a steady rate on a thread (the rate is the load, not a wait)."""

    def __init__(self, cluster: Cluster, per_second: float) -> None:
        self.cluster = cluster
        self.period = 1.0 / per_second
        self.ids: list[str] = []  # the accepted ones
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self.period):
            execution_id = f"steady-{n:05d}"
            n += 1
            try:
                self.cluster.create("ha", "steady", execution_id)
            except Exception:  # noqa: BLE001 - not accepted (broker away): not counted
                self.refused += 1
                continue
            self.ids.append(execution_id)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join()
        return list(self.ids)


class Supervisor:
    """Restarts a worker that exited because it was cut off from Kafka, as Kubernetes would
    (a thread polling the processes, like ``Load``): a broker restart under load can outlast
    a worker's dead-after time (seen: a broker taking 25 s to start beside three CPU hogs)."""

    def __init__(self, workers: list[ManagedProcess]) -> None:
        self.workers = workers
        self.restarts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for worker in self.workers:
                if not worker.running and worker.returncode == WORKER_CUT_OFF_EXIT:
                    self.restarts.append(worker.name)
                    worker.start()

    def __enter__(self) -> Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _where(cluster: Cluster, ids: set[str]) -> dict[str, list[tuple[int, int, str]]]:
    """(partition, offset, kind) of each execution's inputs on the executor topic."""
    reader = cluster.queue.subscribe(
        [EXECUTOR], f"{cluster.settings_dict['kafka_topic_prefix']}diag-{time.monotonic_ns()}"
    )
    found: dict[str, list[tuple[int, int, str]]] = {i: [] for i in ids}
    try:
        for _ in range(20):
            records = reader.poll(1000, timeout=1.0)
            for record in records:
                if record.key in ids:
                    kind = json.loads(record.value or b"{}").get("kind", "?")
                    found[record.key].append((record.partition, record.offset, kind))
    finally:
        reader.close()
    return found


def _wait_all_ended(cluster: Cluster, ids: list[str], timeout: float) -> None:
    def pending() -> list[str]:
        return [
            i
            for i in ids
            if i not in cluster.latest or not cluster.latest[i].state.current.terminal
        ]

    def ended() -> bool:
        _read(cluster)
        return not pending()

    try:
        wait_until(ended, timeout, f"the {len(ids)} executions created to end")
    except WaitTimeout:
        stuck = pending()
        where = _where(cluster, set(stuck))
        states = {
            i: cluster.latest[i].state.current if i in cluster.latest else None for i in stuck
        }
        pytest.fail(
            f"{len(stuck)} of {len(ids)} executions never ended: {states}; on executor {where}"
        )


class Commits:
    """The executors' committed offsets on ``executor`` against the records it holds."""

    def __init__(self, cluster: Cluster) -> None:
        prefix = cluster.settings_dict["kafka_topic_prefix"]
        self.topic = f"{prefix}{EXECUTOR}"
        self.group = f"{prefix}executor"  # the Faust app's id
        servers = cluster.settings_dict["kafka_bootstrap_servers"]
        self.reader = Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": f"{prefix}commits-reader",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        self.committer = Consumer(
            {"bootstrap.servers": servers, "group.id": self.group, "enable.auto.commit": False}
        )
        partitions = self.reader.list_topics(self.topic, timeout=30).topics[self.topic].partitions
        self.reader.assign([TopicPartition(self.topic, p, 0) for p in partitions])
        self.last: dict[int, int] = {p: -1 for p in partitions}  # last record offset read

    def behind(self) -> dict[int, tuple[int, int]]:
        """Partitions whose last record is not committed yet: {partition: (committed, last)}."""
        while (message := self.reader.poll(0.2)) is not None:
            if message.error() is None:
                self.last[message.partition()] = max(
                    self.last[message.partition()], message.offset()
                )
        try:
            found = self.committer.committed(
                [TopicPartition(self.topic, p) for p in self.last], timeout=10
            )
        except KafkaException:  # not answered now (a broker restarting): unknown, ask again
            return {p: (-1, last) for p, last in self.last.items()}
        committed = {tp.partition: tp.offset for tp in found}
        return {p: (committed[p], last) for p, last in self.last.items() if committed[p] <= last}

    def close(self) -> None:
        self.reader.close()
        self.committer.close()


def _executor(
    lanner_process: StartLanner, cluster: Cluster, name: str, **env: str
) -> ManagedProcess:
    return lanner_process(
        ["server", "executor"],
        env={
            **cluster.env(name),
            "LANNER_EXECUTOR_SESSION_TIMEOUT_SECONDS": "3",
            "LANNER_EXECUTOR_TRACE": "1",
            **env,
        },
        name=f"executor-{name}",
    )


def _read(cluster: Cluster) -> None:
    """The snapshots so far; a read the broker cut (its restart) is tried again next time."""
    try:
        cluster.read()
    except QueueError:
        pass


def _ended_count(cluster: Cluster) -> int:
    _read(cluster)
    return sum(1 for e in cluster.latest.values() if e.state.current.terminal)


def _created_after(load: Load, count: int, what: str) -> None:
    before = len(load.ids)
    wait_until(lambda: len(load.ids) >= before + count, 240, f"{count} executions created {what}")


def _wait_committed(cluster: Cluster) -> None:
    """The executors commit what they applied: every record of ``executor`` gets committed."""
    commits = Commits(cluster)
    try:
        wait_until(
            lambda: not commits.behind(),
            120,
            "the executors to commit every record of the executor topic",
            interval=1,
            diagnose=lambda: f"(committed, last record) per partition behind: {commits.behind()}",
        )
    finally:
        commits.close()


def test_kill_9_of_one_of_two_executors_under_a_steady_load_holds_no_execution(
    cluster: Cluster, lanner_process: StartLanner
) -> None:
    """Executions created before, during and after the kill all end, and the offsets of the
    executor topic are committed to its end (before the fix the survivor stopped committing
    at the first run of two offsets without records — the markers of two workers'
    transactions — at a fetch boundary, and every rebalance read everything since again)."""
    executors = {name: _executor(lanner_process, cluster, name) for name in ("e1", "e2")}
    lanner_process(["server", "worker"], env=cluster.env("w1"), name="worker-w1")
    lanner_process(["server", "worker"], env=cluster.env("w2"), name="worker-w2")
    cluster.deploy(FLOW)
    load = Load(cluster, per_second=10)
    load.start()
    wait_until(lambda: _ended_count(cluster) >= 40, 240, "40 executions ended before the kill")
    executors["e1"].kill()
    _created_after(load, 150, "after the kill")
    executors["e1"] = _executor(lanner_process, cluster, "e1")
    _created_after(load, 100, "after the restart")
    ids = load.stop()
    _wait_all_ended(cluster, ids, 90)
    _wait_committed(cluster)


def test_broker_restart_under_a_steady_load_recovers_throughput_and_commits(
    infra: Any, unique_name: str, tmp_path: Path, lanner_process: StartLanner
) -> None:
    """A restart of the (single) broker: the executors go on applying and committing, so the
    executions created after it end and the executor topic is committed to its end (before
    the fix the commits had stopped long before, the rebalance at the broker's return made
    both executors read everything since, and they fell behind for good)."""
    kafka = infra.kafka(1)  # a broker of this test's own: it gets restarted
    cluster = Cluster(kafka.bootstrap_servers, unique_name + ".", tmp_path)
    try:
        # the workers outlive a broker restart of a few seconds (the default 30 s)
        survive = {"LANNER_WORKER_DEAD_AFTER_SECONDS": "30"}
        for name in ("e1", "e2"):
            _executor(lanner_process, cluster, name)
        workers = [
            lanner_process(["server", "worker"], env={**cluster.env(name), **survive}, name=name)
            for name in ("w1", "w2")
        ]
        cluster.deploy(FLOW)
        load = Load(cluster, per_second=10)
        load.start()
        wait_until(lambda: _ended_count(cluster) >= 100, 240, "100 executions ended before")
        node = kafka.nodes[0].node_id
        with Supervisor(workers) as supervisor:
            kafka.stop_node(node)
            kafka.restart_node(node)
            _created_after(load, 200, "after the broker restart")
            ids = load.stop()
            _wait_all_ended(cluster, ids, 180)
            _wait_committed(cluster)
        print(f"workers restarted after being cut off: {supervisor.restarts or 'none'}")
    finally:
        cluster.close()
