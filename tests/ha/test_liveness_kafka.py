"""Dead and zombie workers on real Kafka: an executor, two workers, each its own process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from common.models.execution import Execution, TaskRun
from common.models.state import State
from tests.ha.cluster import Cluster, flow
from tests.infra.fixtures import StartLanner
from tests.infra.processes import ManagedProcess
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

SLEEP_20S = """
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT20S
"""


@pytest.fixture
def workers(cluster: Cluster, lanner_process: StartLanner) -> Iterator[dict[str, ManagedProcess]]:
    lanner_process(["server", "executor"], env=cluster.env("e1"), name="executor-e1")
    started = {
        name: lanner_process(["server", "worker"], env=cluster.env(name), name=name)
        for name in ("w1", "w2")
    }
    cluster.deploy(flow(SLEEP_20S, "nap"))
    yield started


def _running_on(cluster: Cluster, execution_id: str) -> TaskRun:
    def claimed() -> TaskRun | None:
        cluster.read()
        execution = cluster.latest.get(execution_id)
        if execution is None or not execution.task_run_list:
            return None
        run = execution.task_run_list[0]
        claimed = run.attempts and run.attempts[-1].worker_id
        return run if claimed and run.state.current == State.RUNNING else None

    return wait_until(claimed, 60, f"the task of {execution_id} running on a worker")


def _moved(cluster: Cluster, execution_id: str, since: float) -> tuple[Execution, float]:
    def second_attempt() -> Execution | None:
        cluster.read()
        execution = cluster.latest[execution_id]
        run = execution.task_run_list[0]
        ok = len(run.attempts) == 2 and run.attempts[1].state.current == State.RUNNING
        return execution if ok else None

    execution = wait_until(second_attempt, 60, "attempt 2 running on the other worker")
    return execution, time.monotonic() - since


def test_a_killed_worker_s_task_runs_again_on_the_other_worker(
    cluster: Cluster, workers: dict[str, ManagedProcess]
) -> None:
    execution_id = cluster.create("ha", "nap", "dead-worker")
    run = _running_on(cluster, execution_id)
    holder = run.attempts[-1].worker_id
    assert holder is not None
    workers[holder].kill()
    _, took = _moved(cluster, execution_id, time.monotonic())
    ended = cluster.wait_ended([execution_id], timeout=120)[execution_id]
    assert ended.state.current == State.SUCCESS, ended.state
    attempts = ended.task_run_list[0].attempts
    assert [a.state.current for a in attempts] == [State.FAILED, State.SUCCESS]
    assert attempts[0].worker_id == holder and attempts[1].worker_id not in (None, holder)
    print(f"\nkill -9 of a worker: attempt 2 started {took:.1f} s later (worker_dead_after 5 s)")


def test_a_frozen_worker_continued_changes_nothing_and_stops(
    cluster: Cluster, workers: dict[str, ManagedProcess]
) -> None:
    execution_id = cluster.create("ha", "nap", "zombie-worker")
    run = _running_on(cluster, execution_id)
    holder = run.attempts[-1].worker_id
    assert holder is not None
    zombie = workers[holder]
    assert zombie.pid is not None
    os.killpg(zombie.pid, signal.SIGSTOP)
    try:
        _moved(cluster, execution_id, time.monotonic())
    finally:
        os.killpg(zombie.pid, signal.SIGCONT)
    wait_until(lambda: not zombie.running, 60, f"the zombie worker {holder} to stop")
    ended = cluster.wait_ended([execution_id], timeout=120)[execution_id]
    assert ended.state.current == State.SUCCESS, ended.state
    attempts = ended.task_run_list[0].attempts
    assert [a.state.current for a in attempts] == [State.FAILED, State.SUCCESS]
    assert attempts[1].worker_id not in (None, holder)
