"""`lanner server worker` as a real process on real Kafka; the test plays the executor.

The test produces ``WorkerTask`` records and kill orders with a ``KafkaQueue`` and reads what the
worker writes (``executor``, ``worker-jobs``, ``workers``) with a plain ``read_committed``
consumer that can tell when it has read everything written so far (``Topic.read_to_end``), so
"the worker wrote nothing else" is checked without waiting for a while.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from common.cli.kafka import kafka
from common.cli.server_kafka import WORKER_CUT_OFF_EXIT
from common.ids import new_id
from common.models.execution import TaskRun
from common.models.messages import (
    EXECUTOR_INPUT,
    KillOrder,
    TaskResult,
    WorkerDied,
    WorkerHeartbeat,
    WorkerJob,
    WorkerTask,
    WorkerTaskResult,
)
from common.models.state import State
from common.queue.base import EXECUTOR, KILLS, WORKER_JOBS, WORKERS, worker_tasks_topic
from common.queue.kafka import KafkaQueue
from common.queue.kafka_client import create_admin
from common.storage.local import LocalStorage
from tests.infra.fixtures import StartLanner
from tests.infra.kafka import KafkaCluster
from tests.infra.processes import ManagedProcess, free_ports, group_pids, http_ok
from tests.infra.prometheus import sample_value
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

DEADLINE = 60.0
SESSION_TIMEOUT_MS = 6000  # the brokers' group.min.session.timeout.ms
CONSUMER_CONFIG = {
    "session.timeout.ms": SESSION_TIMEOUT_MS,
    "heartbeat.interval.ms": 500,
    # a member that stops polling is evicted after this: as short as the session timeout
    "max.poll.interval.ms": SESSION_TIMEOUT_MS,
}
SLEEP_LONG = {"id": "nap", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT600S"}


def kafka_init(servers: str, prefix: str, *groups: str) -> None:
    args = ["init", "--bootstrap-servers", servers, "--prefix", prefix, "--partitions", "2"]
    for group in groups:
        args += ["--worker-group", group]
    result = CliRunner().invoke(kafka, args)
    assert result.exit_code == 0, result.output


class Topic:
    """Every record of one topic, read from the start, ``read_committed``."""

    def __init__(self, servers: str, name: str) -> None:
        from confluent_kafka import Consumer
        from confluent_kafka import TopicPartition as KafkaPartition

        self.name = name
        self.consumer = Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": f"test-{new_id()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        metadata = self.consumer.list_topics(name, timeout=30).topics[name]
        self.partitions = [KafkaPartition(name, p, 0) for p in metadata.partitions]
        self.consumer.assign(self.partitions)
        self.records: list[tuple[str | None, bytes | None]] = []
        self.ends: dict[int, int] = {}

    def poll(self) -> None:
        for message in self.consumer.consume(500, 0.2):
            if message.error() is None:
                key = message.key()
                self.records.append((key.decode() if key else None, message.value()))

    def read_to_end(self) -> None:
        """Reads until every record committed before this call is in ``records``."""
        ends = {}
        for tp in self.partitions:
            _low, high = self.consumer.get_watermark_offsets(tp, timeout=30)
            ends[tp.partition] = high
        self.ends = ends

        def at_end() -> bool:
            self.poll()
            positions = self.consumer.position(self.partitions)
            return all(p.offset >= ends[p.partition] for p in positions if ends[p.partition])

        wait_until(at_end, DEADLINE, f"the end of {self.name}")

    def wait_for(self, predicate: Callable[[], object], what: str) -> None:
        def check() -> object:
            self.poll()
            return predicate()

        wait_until(check, DEADLINE, what)

    def close(self) -> None:
        self.consumer.close()


class FakeExecutor:
    """Submits worker tasks and kill orders, reads what the workers answer."""

    def __init__(self, servers: str, prefix: str) -> None:
        from confluent_kafka.admin import AdminClient

        self.queue = KafkaQueue(servers, prefix=prefix, client_id="test-executor")
        self.admin = AdminClient({"bootstrap.servers": servers})
        self.inputs = Topic(servers, prefix + EXECUTOR)
        self.jobs = Topic(servers, prefix + WORKER_JOBS)
        self.heartbeats = Topic(servers, prefix + WORKERS)

    def submit(
        self,
        task: dict[str, Any],
        *,
        execution_id: str | None = None,
        group: str | None = None,
        sequence: int = 0,
        run_id: str | None = None,
    ) -> WorkerTask:
        run = TaskRun(
            id=run_id or new_id(),
            execution_id=execution_id or new_id(),
            namespace="company.team",
            flow_id="flow",
            task_id=str(task["id"]),
        )
        run.set_state(State.CREATED, datetime.now(UTC))
        worker_task = WorkerTask(
            task_run=run, task=task, variables={}, attempt=1, sequence=sequence
        )
        self.resend(worker_task, group)
        return worker_task

    def resend(self, task: WorkerTask, group: str | None = None) -> None:
        self.queue.emit(worker_tasks_topic(group), task.task_run.id, task.to_json())

    def kill(self, execution_id: str, sequence: int = 0) -> None:
        order = KillOrder(execution_id=execution_id, sequence=sequence)
        self.queue.emit(KILLS, execution_id, order.to_json())

    # ------------------------------------------------------------ reading
    def messages(self) -> list[Any]:
        return [EXECUTOR_INPUT.validate_json(value or b"") for _key, value in self.inputs.records]

    def results(self, task: WorkerTask) -> list[WorkerTaskResult]:
        return [
            m.result
            for m in self.messages()
            if isinstance(m, TaskResult) and m.result.task_run_id == task.task_run.id
        ]

    def claims(self, task: WorkerTask) -> list[WorkerTaskResult]:
        return [r for r in self.results(task) if r.state == State.RUNNING]

    def handed_back(self, task: WorkerTask) -> list[WorkerDied]:
        return [
            m
            for m in self.messages()
            if isinstance(m, WorkerDied) and m.task_run_id == task.task_run.id
        ]

    def final(self, task: WorkerTask) -> WorkerTaskResult:
        def ended() -> WorkerTaskResult | None:
            return next((r for r in self.results(task) if r.state.terminal), None)

        self.inputs.wait_for(ended, f"the result of {task.task['id']}")
        result = ended()
        assert result is not None
        return result

    def wait_running(self, task: WorkerTask) -> WorkerTaskResult:
        self.inputs.wait_for(lambda: self.claims(task), f"the claim of {task.task['id']}")
        return self.claims(task)[0]

    def job_records(self, task: WorkerTask) -> list[WorkerJob | None]:
        return [
            None if value is None else WorkerJob.model_validate_json(value)
            for key, value in self.jobs.records
            if key == task.task_run.id
        ]

    def beats(self, worker_id: str) -> list[WorkerHeartbeat]:
        beats = [WorkerHeartbeat.model_validate_json(v or b"") for _k, v in self.heartbeats.records]
        return [b for b in beats if b.worker_id == worker_id]

    def close(self) -> None:
        for topic in (self.inputs, self.jobs, self.heartbeats):
            topic.close()
        self.queue.close()


class Env:
    """Settings of the worker processes of one test: LANNER_* variables."""

    def __init__(self, servers: str, prefix: str, data_dir: Path) -> None:
        self.servers = servers
        self.prefix = prefix
        self.data_dir = data_dir
        self.base = {
            "LANNER_QUEUE": "kafka",
            "LANNER_KAFKA_BOOTSTRAP_SERVERS": servers,
            "LANNER_KAFKA_TOPIC_PREFIX": prefix,
            "LANNER_KAFKA_CONSUMER_CONFIG": json.dumps(CONSUMER_CONFIG),
            "LANNER_DATA_DIR": str(data_dir),
        }

    def worker(
        self,
        start: StartLanner,
        *args: str,
        worker_id: str | None = None,
        **settings: str,
    ) -> Worker:
        port = free_ports(1)[0]
        worker_id = worker_id or f"w-{new_id()[:8]}"
        env = dict(self.base)
        env.update({f"LANNER_{k.upper()}": v for k, v in settings.items()})
        env.update({"LANNER_METRICS_PORT": str(port), "LANNER_WORKER_ID": worker_id})
        proc = start(["server", "worker", *args], env=env, name=f"worker-{worker_id}")
        worker = Worker(proc, worker_id, port)
        proc.wait_for(worker.ready, DEADLINE, "the worker to be ready")
        return worker


class Worker:
    def __init__(self, proc: ManagedProcess, worker_id: str, port: int) -> None:
        self.proc = proc
        self.id = worker_id
        self.port = port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self) -> bool:
        return http_ok(self.url("/health/ready"))

    def not_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/health/ready"), timeout=2):
                return False
        except urllib.error.HTTPError as exc:
            return exc.code == 503
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as response:
            text: str = response.read().decode()
            return text

    def log(self) -> str:
        return self.proc.log_path.read_text()


@pytest.fixture
def prefix(unique_name: str) -> str:
    return unique_name + "."


@pytest.fixture
def env(kafka_bootstrap_servers: str, prefix: str, tmp_path: Path) -> Env:
    return Env(kafka_bootstrap_servers, prefix, tmp_path / "data")


@pytest.fixture
def executor(kafka_bootstrap_servers: str, prefix: str) -> Iterator[FakeExecutor]:
    kafka_init(kafka_bootstrap_servers, prefix, "gpu")
    fake = FakeExecutor(kafka_bootstrap_servers, prefix)
    yield fake
    fake.close()


# ---------------------------------------------------------------------------------- tests


def test_start_creates_the_topics_serves_management_and_logs_its_start_line(
    kafka_bootstrap_servers: str,
    env: Env,
    prefix: str,
    lanner_process: StartLanner,
) -> None:
    # no `lanner kafka init`: the worker creates what it needs, its group's topics included
    config = env.data_dir.parent / "lanner.yml"
    config.write_text("lanner:\n  worker_threads: 3\n")
    worker = env.worker(lanner_process, "--config", str(config), "--worker-group", "gpu")
    topics = create_admin(kafka_bootstrap_servers).list_topics(timeout=30).topics
    assert {prefix + "executor", prefix + "kills", prefix + "worker-tasks.gpu"} <= set(topics)
    assert http_ok(worker.url("/health/live"))
    [start_line] = [line for line in worker.log().splitlines() if "lanner worker started" in line]
    assert f"queue kafka {kafka_bootstrap_servers} prefix {prefix}" in start_line
    assert f"partitions: {prefix}worker-tasks.gpu (16 partitions)" in start_line
    assert f"consumer group worker.gpu; worker id {worker.id}, 3 threads" in start_line


def test_claim_heartbeats_large_outputs_and_metrics(
    executor: FakeExecutor, env: Env, lanner_process: StartLanner
) -> None:
    worker = env.worker(lanner_process, "--threads", "2", max_output_bytes="1000")
    task = executor.submit({"id": "ret", "type": "io.kestra.plugin.core.debug.Return"})
    claim = executor.wait_running(task)
    assert (claim.worker_id, claim.attempt) == (worker.id, 1)
    assert executor.final(task).state == State.SUCCESS

    # the claim went with its job record; the end with its tombstone
    executor.jobs.read_to_end()
    [job, tombstone] = executor.job_records(task)
    assert job is not None and (job.worker_id, job.attempt) == (worker.id, 1)
    assert tombstone is None

    # the same task delivered again (an executor retrying its send) is claimed once, run once
    executor.resend(task)
    big = executor.submit(
        {"id": "big", "type": "io.kestra.plugin.core.debug.Return", "format": "x" * 5000}
    )
    result = executor.final(big)
    executor.inputs.read_to_end()
    assert [r.state for r in executor.results(task)] == [State.RUNNING, State.SUCCESS]

    # an output over max_output_bytes travels as a storage URI
    assert result.state == State.SUCCESS and result.outputs is not None
    uri = result.outputs["value"]
    assert uri.startswith("lanner://")
    assert LocalStorage(env.data_dir / "storage").get(uri) == b"x" * 5000

    # heartbeats on `workers`, keyed by the worker id
    executor.heartbeats.wait_for(lambda: len(executor.beats(worker.id)) >= 3, "3 heartbeats")
    beat = executor.beats(worker.id)[-1]
    assert (beat.status, beat.threads, beat.group) == ("UP", 2, None)

    text = worker.metrics()
    return_type = "io.kestra.plugin.core.debug.Return"
    assert (
        sample_value(text, "lanner_worker_task_runs_total", type=return_type, state="SUCCESS") == 2
    )
    assert (
        sample_value(text, "lanner_worker_task_runs_total", type=return_type, state="RUNNING") == 2
    )
    assert sample_value(text, "lanner_worker_task_duration_seconds_count", type=return_type) == 2
    assert sample_value(text, "lanner_worker_task_queued_seconds_count") == 2
    assert sample_value(text, "lanner_worker_pool_threads") == 2
    assert sample_value(text, "lanner_worker_pool_running_tasks") == 0
    assert sample_value(text, "lanner_worker_pool_pending_tasks") == 0
    assert task.task_run.execution_id not in text and task.task_run.id not in text


def test_a_full_pool_runs_one_task_at_a_time_and_stays_in_its_group(
    executor: FakeExecutor, env: Env, prefix: str, lanner_process: StartLanner
) -> None:
    worker = env.worker(lanner_process, "--threads", "1")
    execution_id = new_id()  # one execution: its results are on one partition, in order
    # the first alone keeps the pool full longer than the session timeout and
    # max.poll.interval.ms: a worker that stopped polling meanwhile would leave its group
    naps = [
        executor.submit(
            {"id": f"nap{i}", "type": "io.kestra.plugin.core.flow.Sleep", "duration": duration},
            execution_id=execution_id,
        )
        for i, duration in enumerate(["PT10S", "PT1S", "PT1S"])
    ]
    executor.wait_running(naps[0])
    member = _member(executor, prefix + "worker", worker.id)  # group ids carry the prefix
    for nap in naps:
        assert executor.final(nap).state == State.SUCCESS
    executor.inputs.read_to_end()

    running = 0
    for message in executor.messages():
        assert isinstance(message, TaskResult)
        running += 1 if message.result.state == State.RUNNING else -1
        assert 0 <= running <= 1, "two tasks ran at once on a one-thread worker"
    for nap in naps:
        assert len(executor.claims(nap)) == 1
    # the same member all along: never evicted, never rejoined
    assert _member(executor, prefix + "worker", worker.id) == member
    assert "revoked" not in worker.log()


def _member(executor: FakeExecutor, group: str, instance_id: str) -> str:
    """The member id of the static member ``instance_id`` of ``group``."""
    description = executor.admin.describe_consumer_groups([group])[group].result(timeout=30)
    members = [m for m in description.members if m.group_instance_id == instance_id]
    assert len(members) == 1, [(m.member_id, m.group_instance_id) for m in description.members]
    [member] = members
    member_id: str = member.member_id
    return member_id


def test_kill_orders_are_never_missed(
    executor: FakeExecutor, env: Env, lanner_process: StartLanner
) -> None:
    # published before the worker started, for a task it takes afterwards
    early = new_id()
    executor.kill(early, sequence=2)
    worker = env.worker(lanner_process, "--threads", "4")
    first = executor.submit(SLEEP_LONG, execution_id=early, sequence=1)
    assert executor.final(first).state == State.KILLED

    # a running task
    running = executor.submit(SLEEP_LONG)
    executor.wait_running(running)
    executor.kill(running.task_run.execution_id, sequence=running.sequence)
    assert executor.final(running).state == State.KILLED

    # arrived before its task: remembered
    before = new_id()
    executor.kill(before, sequence=5)
    worker.proc.wait_for(
        lambda: f"kill order for execution {before}" in worker.log(), DEADLINE, "the kill order"
    )
    late = executor.submit(SLEEP_LONG, execution_id=before, sequence=4)
    assert executor.final(late).state == State.KILLED
    # ... but not for a task of a later restart of that execution
    restarted = executor.submit(
        {"id": "ret", "type": "io.kestra.plugin.core.debug.Return", "format": "again"},
        execution_id=before,
        sequence=6,
    )
    assert executor.final(restarted).state == State.SUCCESS
    assert all(r.worker_id == worker.id for r in executor.results(first))

    # the same worker id restarted knows the kills its previous incarnation read
    worker.proc.stop(timeout=DEADLINE)
    again = env.worker(lanner_process, "--threads", "4", worker_id=worker.id)
    forgotten = executor.submit(SLEEP_LONG, execution_id=before, sequence=3)
    result = executor.final(forgotten)
    assert (result.state, result.worker_id) == (State.KILLED, again.id)


def test_sigterm_drains_then_hands_back_what_still_runs(
    executor: FakeExecutor, env: Env, lanner_process: StartLanner
) -> None:
    worker = env.worker(lanner_process, "--threads", "2", worker_drain_timeout_seconds="20")
    short = executor.submit(
        {"id": "short", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT1S"}
    )
    long = executor.submit(SLEEP_LONG)
    executor.wait_running(short)
    executor.wait_running(long)
    worker.proc.stop(timeout=DEADLINE)
    assert worker.proc.returncode == 0

    # what ended within the grace period reported its result
    assert executor.final(short).state == State.SUCCESS
    # what still ran is handed back: the coordinator's message for its attempt, no result
    executor.inputs.read_to_end()
    [died] = executor.handed_back(long)
    assert (died.id, died.attempt, died.worker_id) == (
        f"worker-died:{long.task_run.id}:1",
        1,
        worker.id,
    )
    assert [r.state for r in executor.results(long)] == [State.RUNNING]
    executor.jobs.read_to_end()
    assert executor.job_records(long)[-1] is None  # no longer held
    executor.heartbeats.read_to_end()
    last = executor.beats(worker.id)[-1]
    assert (last.status, last.running) == ("TERMINATING", 0)


def test_worker_groups(executor: FakeExecutor, env: Env, lanner_process: StartLanner) -> None:
    plain = env.worker(lanner_process, "--threads", "2")
    gpu_task = executor.submit(
        {"id": "gpu", "type": "io.kestra.plugin.core.debug.Return", "format": "g"}, group="gpu"
    )
    plain_task = executor.submit(
        {"id": "cpu", "type": "io.kestra.plugin.core.debug.Return", "format": "c"}
    )
    assert executor.final(plain_task).worker_id == plain.id
    executor.inputs.read_to_end()
    assert executor.results(gpu_task) == []  # a worker without the group never takes it

    gpu = env.worker(lanner_process, "--threads", "2", "--worker-group", "gpu")
    result = executor.final(gpu_task)
    assert (result.state, result.worker_id) == (State.SUCCESS, gpu.id)
    other = executor.submit(
        {"id": "cpu2", "type": "io.kestra.plugin.core.debug.Return", "format": "c"}
    )
    assert executor.final(other).worker_id == plain.id


def test_a_zombie_worker_continued_after_its_dead_after_sends_nothing_and_stops(
    executor: FakeExecutor, env: Env, lanner_process: StartLanner
) -> None:
    dead_after = 8.0
    worker = env.worker(lanner_process, "--threads", "2", worker_dead_after_seconds=str(dead_after))
    # ends while the worker is frozen: its result would be late
    nap = executor.submit(
        {"id": "nap", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT3S"}
    )
    executor.wait_running(nap)
    assert worker.proc.pid is not None
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        # what the liveness coordinator waits for: no heartbeat for longer than dead_after
        seen = {"count": len(executor.beats(worker.id)), "at": time.monotonic()}

        def declared_dead() -> bool:
            executor.heartbeats.poll()
            count = len(executor.beats(worker.id))
            if count != seen["count"]:
                seen.update(count=count, at=time.monotonic())
            return time.monotonic() - seen["at"] > dead_after + 1

        wait_until(declared_dead, DEADLINE, "the frozen worker to miss its heartbeats")
        beats_before = len(executor.beats(worker.id))
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)
    wait_until(lambda: not worker.proc.running, DEADLINE, "the zombie to stop")
    assert worker.proc.returncode == WORKER_CUT_OFF_EXIT, worker.log()
    executor.inputs.read_to_end()
    assert [r.state for r in executor.results(nap)] == [State.RUNNING]  # no late result
    executor.heartbeats.read_to_end()
    assert len(executor.beats(worker.id)) == beats_before  # and it never looked alive again


def test_a_worker_cut_off_from_kafka_kills_its_tasks_and_exits(
    tmp_path: Path, unique_name: str, lanner_process: StartLanner, infra: Any
) -> None:
    cluster: KafkaCluster = infra.kafka(1)  # its own broker: this test stops it
    prefix = unique_name + "."
    kafka_init(cluster.bootstrap_servers, prefix)
    fake = FakeExecutor(cluster.bootstrap_servers, prefix)
    env = Env(cluster.bootstrap_servers, prefix, tmp_path / "data")
    worker = env.worker(lanner_process, "--threads", "2", worker_dead_after_seconds="12")
    pidfile = tmp_path / "task.pid"
    task = fake.submit(
        {
            "id": "sh",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "commands": [f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}", "sleep 600"],
        }
    )
    fake.wait_running(task)
    wait_until(pidfile.exists, DEADLINE, "the task's shell to start")
    task_group = int(pidfile.read_text())
    assert group_pids(task_group)
    fake.close()

    cluster.stop()
    worker.proc.wait_for(worker.not_ready, DEADLINE, "readiness to fail without Kafka")
    wait_until(lambda: not worker.proc.running, DEADLINE, "the cut-off worker to exit")
    assert worker.proc.returncode == WORKER_CUT_OFF_EXIT, worker.log()
    assert "cut off from the queue" in worker.log()
    assert not group_pids(task_group), "the task outlived its worker"
    assert os.path.exists(pidfile)


def test_a_broker_restart_loses_no_claim_and_no_result(
    tmp_path: Path, unique_name: str, lanner_process: StartLanner, infra: Any
) -> None:
    cluster: KafkaCluster = infra.kafka(1)  # its own broker: this test restarts it
    prefix = unique_name + "."
    kafka_init(cluster.bootstrap_servers, prefix)
    fake = FakeExecutor(cluster.bootstrap_servers, prefix)
    env = Env(cluster.bootstrap_servers, prefix, tmp_path / "data")
    worker = env.worker(lanner_process, "--threads", "2", worker_dead_after_seconds="300")
    try:
        nap = fake.submit(
            {"id": "nap", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT2S"}
        )
        fake.wait_running(nap)
        cluster.stop_node(1)
        # the nap ends while the broker is down: its result waits in the worker, and the
        # group session of the worker times out
        worker.proc.wait_for(worker.not_ready, DEADLINE, "readiness to fail without Kafka")
        cluster.restart_node(1)
        assert fake.final(nap).state == State.SUCCESS
        # claims work again (they hung in librdkafka's send_offsets_to_transaction before the
        # subscription took a new transactional producer after losing its partitions)
        worker.proc.wait_for(worker.ready, DEADLINE, "the worker to be ready again")
        after = fake.submit({"id": "ret", "type": "io.kestra.plugin.core.debug.Return"})
        assert fake.final(after).state == State.SUCCESS
        fake.inputs.read_to_end()
        assert [r.state for r in fake.results(nap)].count(State.RUNNING) == 1
    finally:
        fake.close()
