"""Worker groups end to end on Kafka: the executor, a worker of the default group, and a task
that must run on a worker of group ``gpu``."""

from __future__ import annotations

import pytest

from common.models.messages import LogEntry
from common.models.state import State
from common.queue.base import LOGS
from tests.ha.cluster import Cluster, flow
from tests.infra.fixtures import StartLanner
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_a_task_of_a_worker_group_waits_for_a_worker_of_its_group_and_runs_only_there(
    cluster: Cluster, lanner_process: StartLanner
) -> None:
    lanner_process(["server", "executor"], env=cluster.env("e1"), name="executor-e1")
    lanner_process(["server", "worker"], env=cluster.env("plain"), name="worker-plain")
    cluster.deploy(
        flow(
            """
            tasks:
              - id: anywhere
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.id }}"
              - id: on-gpu
                type: io.kestra.plugin.core.log.Log
                message: on the gpu
                workerGroup:
                  key: gpu
              - id: after
                type: io.kestra.plugin.core.debug.Return
                format: done
            """
        )
    )
    logs = cluster.queue.subscribe([LOGS], f"{cluster.settings_dict['kafka_topic_prefix']}logs")
    warnings: list[LogEntry] = []
    execution_id = cluster.create("ha", "f", "grouped-1")

    def waiting_on_gpu() -> bool:
        cluster.read()
        execution = cluster.latest.get(execution_id)
        if execution is None:
            return False
        runs = {tr.task_id: tr for tr in execution.task_run_list}
        return "on-gpu" in runs and runs["anywhere"].state.current == State.SUCCESS

    wait_until(waiting_on_gpu, 60, "the gpu task to be submitted")
    waiting = cluster.latest[execution_id]
    runs = {tr.task_id: tr for tr in waiting.task_run_list}
    # visible while no worker of its group is alive: the task run is created, never started
    assert runs["on-gpu"].state.current == State.CREATED, runs["on-gpu"].state
    assert waiting.state.current == State.RUNNING

    def warned() -> list[LogEntry]:
        for record in logs.poll(500, timeout=0.2):
            if record.value is not None:
                entry = LogEntry.model_validate_json(record.value)
                if entry.execution_id == execution_id and entry.level == "WARN":
                    warnings.append(entry)
        return warnings

    (warning,) = wait_until(warned, 30, "a warning on the waiting task's logs")
    assert warning.task_id == "on-gpu"
    assert "no worker of group 'gpu' is alive" in warning.message
    assert "lanner server worker --worker-group gpu" in warning.message

    lanner_process(
        ["server", "worker", "--worker-group", "gpu"], env=cluster.env("gpu1"), name="worker-gpu1"
    )
    ended = cluster.wait_ended([execution_id], timeout=90)[execution_id]
    assert ended.state.current == State.SUCCESS, ended.state
    ran_on = {tr.task_id: tr.attempts[-1].worker_id for tr in ended.task_run_list}
    assert ran_on == {"anywhere": "plain", "on-gpu": "gpu1", "after": "plain"}
