"""The Faust executor as a real process on real Kafka, driven through the queue as the
webserver and the workers drive it."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

import httpx
import pytest

from common.models.execution import Execution
from common.models.messages import LogEntry
from common.models.state import State
from common.queue.base import LOGS
from tests.bench._flows import BENCHMARK01, NAMESPACE
from tests.ha.cluster import Cluster, flow
from tests.infra.fixtures import StartLanner
from tests.infra.processes import ManagedProcess, free_ports
from tests.infra.prometheus import sample_value
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


@pytest.fixture
def worker(cluster: Cluster, lanner_process: StartLanner) -> ManagedProcess:
    """A `lanner server worker` process on the cluster."""
    return lanner_process(["server", "worker"], env=cluster.env("w1"), name="worker-w1")


def test_an_execution_runs_to_success_through_the_faust_executor(
    cluster: Cluster, worker: ManagedProcess, lanner_process: StartLanner
) -> None:
    (port,) = free_ports(1)
    env = {**cluster.env("e1"), "LANNER_METRICS_PORT": str(port)}
    lanner_process(["server", "executor"], env=env, name="executor-e1")
    cluster.deploy(
        flow(
            """
            tasks:
              - id: hello
                type: io.kestra.plugin.core.debug.Return
                format: "hello {{ execution.id }}"
              - id: after
                type: io.kestra.plugin.core.debug.Return
                format: "{{ outputs.hello.value }}!"
            """
        )
    )
    ids = [cluster.create("ha", "f", f"ex-{i}") for i in range(5)]
    ended = cluster.wait_ended(ids)
    for execution_id, execution in ended.items():
        assert execution.state.current == State.SUCCESS, execution.state
        outputs = {tr.task_id: tr.outputs for tr in execution.task_run_list}
        assert outputs["after"] == {"value": f"hello {execution_id}!"}

    # what an operator sees on the management port
    def metrics() -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        flow = {"namespace": "ha", "flow": "f"}
        return {
            "created": sample_value(text, "lanner_executor_executions_created_total", **flow),
            "started": sample_value(text, "lanner_executor_executions_started_total", **flow),
            "ended": sample_value(
                text, "lanner_executor_executions_ended_total", state="SUCCESS", **flow
            ),
            "timed": sample_value(text, "lanner_executor_execution_duration_seconds_count", **flow),
            "lag": sample_value(text, "lanner_executor_consumer_lag_records", topic="executor"),
            "states": sample_value(text, "lanner_executor_table_keys", table="states"),
        }

    def settled() -> bool:
        seen = metrics()
        counted = [seen[k] for k in ("created", "started", "ended", "timed")]
        return counted == [5, 5, 5, 5] and seen["lag"] == 0 and seen["states"] > 0

    wait_until(
        settled,
        60,
        "the executor's metrics to count the 5 executions",
        diagnose=lambda: str(metrics()),
    )


def _running_intervals(execution: Execution) -> tuple[datetime, datetime]:
    histories = execution.state.histories
    start = next(h.date for h in histories if h.state == State.RUNNING)
    return start, histories[-1].date


def test_two_executors_keep_concurrency_flow_triggers_subflows_and_timers(
    cluster: Cluster, worker: ManagedProcess, lanner_process: StartLanner
) -> None:
    """The executions and their flow agent sit on different executor instances (4 partitions
    shared by two executors): the semantics stay those of the embedded executor."""
    for name in ("e1", "e2"):
        lanner_process(["server", "executor"], env=cluster.env(name), name=f"executor-{name}")
    cluster.deploy(
        flow(
            """
            concurrency:
              limit: 1
              behavior: QUEUE
            tasks:
              - id: wait
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.3S
            """,
            "limited",
        )
    )
    cluster.deploy(
        flow(
            """
            tasks:
              - id: a
                type: io.kestra.plugin.core.debug.Return
                format: from-a
            outputs:
              - id: said
                type: STRING
                value: "{{ outputs.a.value }}"
            """,
            "a",
        )
    )
    cluster.deploy(
        flow(
            """
            inputs:
              - id: got
                type: STRING
            tasks:
              - id: b
                type: io.kestra.plugin.core.debug.Return
                format: "b got {{ inputs.got }}"
            triggers:
              - id: after-a
                type: io.kestra.plugin.core.trigger.Flow
                inputs:
                  got: "{{ trigger.outputs.said }}"
                conditions:
                  - type: io.kestra.plugin.core.condition.ExecutionFlow
                    namespace: ha
                    flowId: a
            """,
            "b",
        )
    )
    cluster.deploy(
        flow(
            """
            tasks:
              - id: child
                type: io.kestra.plugin.core.flow.Subflow
                namespace: ha
                flowId: a
                wait: true
                transmitFailed: true
              - id: pause
                type: io.kestra.plugin.core.flow.Pause
                delay: PT1S
              - id: slow
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT30S
                timeout: PT1S
                allowFailure: true
            """,
            "parent",
        )
    )
    limited = [cluster.create("ha", "limited", f"lim-{i}") for i in range(6)]
    parent = cluster.create("ha", "parent", "parent-1")
    ended = cluster.wait_ended([*limited, parent], timeout=120)
    assert all(ended[i].state.current == State.SUCCESS for i in limited)
    intervals = sorted(_running_intervals(ended[i]) for i in limited)
    for (_, end), (next_start, _) in zip(intervals, intervals[1:], strict=False):
        assert next_start >= end, "two executions of a limit-1 flow ran at the same time"
    assert any(State.QUEUED in [h.state for h in ended[i].state.histories] for i in limited)

    run = ended[parent]
    assert run.state.current == State.WARNING, run.state  # the timed-out task may fail
    states = {tr.task_id: tr.state.current for tr in run.task_run_list}
    # the timed-out task failed, which allowFailure turns into WARNING (as Kestra does)
    assert states == {"child": State.SUCCESS, "pause": State.SUCCESS, "slow": State.WARNING}

    # the subflow's child is an execution of flow a: its end triggers b with a's outputs
    def triggered() -> list[Execution]:
        cluster.read()
        return [e for e in cluster.latest.values() if e.flow_id == "b" and e.state.current.terminal]

    wait_until(triggered, 60, "flow b triggered by the end of flow a")
    outputs = [tr.outputs for e in triggered() for tr in e.task_run_list]
    assert {"value": "b got from-a"} in outputs


@pytest.mark.timeout(900)
def test_kill_9_of_one_of_two_executors_loses_and_duplicates_nothing(
    cluster: Cluster, worker: ManagedProcess, lanner_process: StartLanner
) -> None:
    env = {"LANNER_EXECUTOR_SESSION_TIMEOUT_SECONDS": "3", "LANNER_FAUST_INFO": "1"}
    doomed = lanner_process(
        ["server", "executor"], env={**cluster.env("e1"), **env}, name="executor-e1"
    )
    survivor = lanner_process(
        ["server", "executor"], env={**cluster.env("e2"), **env}, name="executor-e2"
    )
    cluster.deploy(BENCHMARK01)
    logs = cluster.queue.subscribe([LOGS], f"{cluster.settings_dict['kafka_topic_prefix']}logs")
    ids = [f"load-{i:03d}" for i in range(500)]

    def ended_count() -> int:
        cluster.read()
        return sum(1 for e in cluster.latest.values() if e.state.current.terminal)

    for execution_id in ids[:250]:
        cluster.create(NAMESPACE, "benchmark01", execution_id)
    wait_until(lambda: ended_count() >= 100, 300, "100 executions ended before the kill")
    doomed.kill()
    killed_at = time.monotonic()
    killed_wall = datetime.now()  # the processes' log timestamps are local time
    in_flight = [e.id for e in cluster.latest.values() if not e.state.current.terminal]
    for execution_id in ids[250:]:
        cluster.create(NAMESPACE, "benchmark01", execution_id)
    ended = cluster.wait_ended(ids, timeout=600)

    assert [i for i, e in ended.items() if e.state.current != State.SUCCESS] == []
    for execution in ended.values():
        task_ids = [tr.task_id for tr in execution.task_run_list]
        assert sorted(task_ids) == ["log", "output"], (execution.id, task_ids)
    # what the workers did: one log line per run of a Log task, never more than its attempts
    lines: Counter[str] = Counter()
    wanted = {tr.id: len(tr.attempts) for e in ended.values() for tr in e.task_run_list}

    def all_lines() -> bool:
        for record in logs.poll(1000, timeout=0.2):
            entry = LogEntry.model_validate_json(record.value or b"{}")
            if entry.task_id == "log" and entry.task_run_id:
                lines[entry.task_run_id] += 1
        return len(lines) == len(ids)

    wait_until(all_lines, 60, "the log line of every Log task run")
    assert {tr: n for tr, n in lines.items() if n > wanted[tr]} == {}
    logs.close()
    # the executions in flight on the killed executor's partitions wait for the survivor
    resumed = [
        next(t for t in cluster.progress[i] if t >= killed_at) - killed_at for i in in_flight
    ]
    ready = [
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        for line in survivor.log_path.read_text().splitlines()
        if "Recovery]: Worker ready" in line
    ]
    took_over = min((r for r in ready if r > killed_wall), default=None)
    print(
        f"\nkill -9 of an executor: the survivor processed its partitions "
        f"{(took_over - killed_wall).total_seconds() if took_over else float('nan'):.1f} s after "
        f"the kill; {len(in_flight)} executions were in flight, the last of them moved again "
        f"{max(resumed, default=0):.1f} s after the kill"
    )


def test_executions_and_tasks_over_the_kafka_record_limit_travel_through_storage(
    cluster: Cluster, worker: ManagedProcess, lanner_process: StartLanner
) -> None:
    lanner_process(["server", "executor"], env=cluster.env("e1"), name="executor-e1")
    cluster.deploy(
        flow(
            """
            inputs:
              - id: big
                type: STRING
            tasks:
              - id: measure
                type: io.kestra.plugin.core.debug.Return
                format: "{{ inputs.big | length }}"
            """,
            "big",
        )
    )
    limit = cluster.settings_dict["queue_max_record_bytes"]
    big = "x" * (3 * limit)  # the execution, its worker task and its snapshots are all over
    cluster.create("ha", "big", "big-1", inputs={"big": big})
    ended = cluster.wait_ended(["big-1"])["big-1"]
    assert ended.state.current == State.SUCCESS, ended.state
    assert ended.task_run_list[0].outputs == {"value": str(len(big))}
    assert ended.inputs == {"big": big}
