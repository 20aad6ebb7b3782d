"""WorkingDirectory in the executor core: sent whole to one worker, its children's task runs
added from the worker's results (Kestra's ``ExecutorService.addDynamicTaskRun``), and run
again whole when its worker dies."""

from __future__ import annotations

from typing import Any

from common.models.execution import TaskRun
from common.models.messages import TaskResult, WorkerDied, WorkerTaskResult
from common.models.state import State

from .core_util import flow_yaml
from .harness import Sim

FLOW = """
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    tasks:
      - id: a
        type: io.kestra.plugin.core.debug.Return
        format: a
      - id: b
        type: io.kestra.plugin.core.debug.Return
        format: b
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.a.value }}{{ outputs.b.value }}"
"""


def _result(
    sim: Sim, ex_id: str, run_id: str, attempt: int, state: State, **extra: Any
) -> TaskResult:
    res = WorkerTaskResult(
        execution_id=ex_id,
        task_run_id=run_id,
        attempt=attempt,
        state=state,
        worker_id="w1",
        date=sim.now,
        **extra,
    )
    return TaskResult(id=res.input_id, execution_id=ex_id, result=res)


def _child(sim: Sim, parent: TaskRun, task_id: str, attempt: int) -> TaskRun:
    child = TaskRun(
        id=f"{parent.id}-{attempt}-{task_id}",
        execution_id=parent.execution_id,
        namespace=parent.namespace,
        flow_id=parent.flow_id,
        task_id=task_id,
        parent_task_run_id=parent.id,
    )
    child.set_state(State.RUNNING, sim.now)
    return child


def _run_children(sim: Sim, ex_id: str, wd: TaskRun, attempt: int, ids: list[str]) -> None:
    for task_id in ids:
        child = _child(sim, wd, task_id, attempt)
        sim.send(_result(sim, ex_id, child.id, 1, State.RUNNING, task_run=child))
        sim.send(
            _result(
                sim, ex_id, child.id, 1, State.SUCCESS, task_run=child, outputs={"value": task_id}
            )
        )


def test_working_directory_is_one_worker_task_and_its_children_join_from_results() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(FLOW))
    ex_id = sim.create("ns", "f")
    sim.run()
    (wt,) = sim.worker_queue
    assert wt.task["type"] == "io.kestra.plugin.core.flow.WorkingDirectory"
    assert [t["id"] for t in wt.task["tasks"]] == ["a", "b"]
    sim.worker_queue.clear()
    wd = wt.task_run
    sim.send(_result(sim, ex_id, wd.id, 1, State.RUNNING))
    _run_children(sim, ex_id, wd, 1, ["a"])
    sim.run()
    ex = sim.execution(ex_id)
    assert [(tr.task_id, tr.state.current) for tr in ex.task_run_list] == [
        ("wd", State.RUNNING),
        ("a", State.SUCCESS),
    ]
    # the worker dies: the directory runs again whole, the dead attempt's task runs dropped
    sim.send(
        WorkerDied(id="died", execution_id=ex_id, task_run_id=wd.id, attempt=1, worker_id="w1")
    )
    sim.run()
    (again,) = sim.worker_queue
    sim.worker_queue.clear()
    assert again.attempt == 2 and again.task_run.id == wd.id
    assert [tr.task_id for tr in sim.execution(ex_id).task_run_list] == ["wd"]
    sim.send(_result(sim, ex_id, wd.id, 2, State.RUNNING))
    _run_children(sim, ex_id, wd, 2, ["a", "b"])
    sim.send(_result(sim, ex_id, wd.id, 2, State.SUCCESS))
    sim.hold_workers = False
    sim.run()
    ex = sim.execution(ex_id)
    assert ex.state.current == State.SUCCESS
    assert [(tr.task_id, tr.state.current) for tr in ex.task_run_list] == [
        ("wd", State.SUCCESS),
        ("a", State.SUCCESS),
        ("b", State.SUCCESS),
        ("after", State.SUCCESS),
    ]
    assert ex.task_run_list[-1].outputs == {"value": "ab"}


RETRY_FLOW = """
retry:
  type: constant
  interval: PT1S
  maxAttempt: 2
tasks:
  - id: wd
    type: io.kestra.plugin.core.flow.WorkingDirectory
    retry:
      type: constant
      interval: PT1S
      maxAttempt: 3
      warningOnRetry: true
    tasks:
      - id: a
        type: io.kestra.plugin.core.debug.Return
        format: a
"""


def test_a_child_retried_by_its_worker_gets_new_attempts_and_is_never_resubmitted() -> None:
    """The worker retries a failed task of the directory in it: the executor sends the policy
    the tasks inherit (the directory's, not the flow's: Kestra's nearest-parent resolution),
    marks the task run RETRYING on the worker's word, never submits it alone, adds the next
    attempt when the worker starts it, and applies ``warningOnRetry`` at the end."""
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(RETRY_FLOW))
    ex_id = sim.create("ns", "f")
    sim.run()
    (wt,) = sim.worker_queue
    sim.worker_queue.clear()
    assert wt.variables["__retry__"]["maxAttempt"] == 3
    wd = wt.task_run
    sim.send(_result(sim, ex_id, wd.id, 1, State.RUNNING))
    child = _child(sim, wd, "a", 1)
    sim.send(_result(sim, ex_id, child.id, 1, State.RUNNING, task_run=child))
    sim.send(_result(sim, ex_id, child.id, 1, State.RETRYING, task_run=child, error="boom"))
    sim.run()
    a = sim.execution(ex_id).find_task_run(child.id)
    assert a is not None and a.state.current == State.RETRYING
    assert [at.state.current for at in a.attempts] == [State.FAILED]
    assert not sim.worker_queue  # not resubmitted away from its directory
    sim.send(_result(sim, ex_id, child.id, 2, State.RUNNING, task_run=child))
    sim.send(_result(sim, ex_id, child.id, 2, State.SUCCESS, task_run=child))
    sim.send(_result(sim, ex_id, wd.id, 1, State.SUCCESS))
    sim.hold_workers = False
    sim.run()
    ex = sim.execution(ex_id)
    a = ex.find_task_run(child.id)
    assert a is not None
    assert [at.state.current for at in a.attempts] == [State.FAILED, State.SUCCESS]
    assert a.state.current == State.WARNING  # warningOnRetry
    assert ex.state.current == State.WARNING
