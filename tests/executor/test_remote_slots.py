"""Flow concurrency when the slots are kept by another process (the Kafka executor's flow
agent): the core asks for admission, the keeper answers with a Dequeue, and every execution
ends as it does when the shell holds the slots itself (the embedded executor)."""

from __future__ import annotations

import pytest

from common.models.messages import TaskResult, WorkerTaskResult
from common.models.state import State

from .core_util import flow_yaml
from .harness import Sim

LIMITED = """
concurrency:
  limit: 1
  behavior: {behavior}
tasks:
  - id: work
    type: io.kestra.plugin.core.debug.Return
    format: done
"""


def _three_at_once(behavior: str, remote: bool) -> list[list[State]]:
    """Three executions created together while the first one's task is still running."""
    sim = Sim(remote_slots=remote, hold_workers=True)
    sim.deploy(flow_yaml(LIMITED.format(behavior=behavior)))
    ids = [sim.create("ns", "f") for _ in range(3)]
    sim.run()
    assert [wt.task_run.execution_id for wt in sim.worker_queue] == ids[:1]
    sim.hold_workers = False
    sim.run()
    return [[h.state for h in sim.execution(eid).state.histories] for eid in ids]


@pytest.mark.parametrize("behavior", ["QUEUE", "CANCEL", "FAIL"])
def test_remote_slot_keeper_gives_the_same_outcome_as_local_slots(behavior: str) -> None:
    local = _three_at_once(behavior, remote=False)
    remote = _three_at_once(behavior, remote=True)
    assert remote == local
    assert local[0][-1] == State.SUCCESS
    expected = {"QUEUE": State.SUCCESS, "CANCEL": State.CANCELLED, "FAIL": State.FAILED}
    assert [h[-1] for h in local[1:]] == [expected[behavior]] * 2


def test_a_result_from_a_worker_that_does_not_hold_the_claim_is_dropped() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(LIMITED.format(behavior="QUEUE")))
    eid = sim.create("ns", "f")
    sim.run()
    task = sim.worker_queue.popleft()

    def result(worker_id: str, state: State) -> TaskResult:
        res = WorkerTaskResult(
            execution_id=eid,
            task_run_id=task.task_run.id,
            attempt=task.attempt,
            state=state,
            outputs={"value": worker_id},
            worker_id=worker_id,
            date=sim.now,
        )
        return TaskResult(id=f"{res.input_id}:{worker_id}", execution_id=eid, result=res)

    sim.send(result("w1", State.RUNNING))  # w1 claims the attempt
    sim.send(result("zombie", State.FAILED))
    sim.run()
    assert sim.execution(eid).state.current == State.RUNNING
    sim.send(result("w1", State.SUCCESS))
    sim.run()
    ex = sim.execution(eid)
    assert ex.state.current == State.SUCCESS
    assert ex.task_run_list[0].outputs == {"value": "w1"}
