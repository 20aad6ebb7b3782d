"""Restart of an execution that ended WARNING because an AllowFailure absorbed a failed task
run: Kestra restarts it (``ExecutionService.restart``, kestra-io/kestra@58c1ca2: any ended
execution holding a task run whose current state ``isFailed()``; the task runs to restart are
those and their ancestors, ``taskRunWithAncestors``; a flowable ancestor goes back to RUNNING,
``mapTaskRun``). What ran fine outside the failure does not run again."""

from __future__ import annotations

from typing import Any

from common.models.messages import WorkerTask
from common.models.state import State

from .core_util import FAIL, FLOW, RETURN, flow_yaml, states
from .harness import Sim

ABSORBED = f"""\
tasks:
  - id: absorb
    type: {FLOW}.AllowFailure
    tasks:
      - id: flaky
        type: {RETURN}
        format: x
  - id: after
    type: {RETURN}
    format: done
"""


def test_a_warning_execution_restarts_its_absorbed_failure_and_can_succeed() -> None:
    broken = {"flaky": True}

    def outcome(wt: WorkerTask) -> Any:
        if wt.task_run.task_id == "flaky" and broken["flaky"]:
            return (State.FAILED, None, "down")
        return None

    sim = Sim(outcome=outcome)
    sim.deploy(flow_yaml(ABSORBED))
    exec_id = sim.create("ns", "f")
    sim.run()
    ex = sim.execution(exec_id)
    assert ex.state.current == State.WARNING
    assert states(ex) == {"absorb": State.WARNING, "flaky": State.FAILED, "after": State.SUCCESS}

    broken["flaky"] = False
    sim.restart(exec_id)
    sim.run()
    ex = sim.execution(exec_id)
    assert ex.state.current == State.SUCCESS
    assert ex.metadata.attempt_number == 2
    assert states(ex) == {"absorb": State.SUCCESS, "flaky": State.SUCCESS, "after": State.SUCCESS}
    runs = {tr.task_id: tr for tr in ex.task_run_list}
    assert State.RESTARTED in [h.state for h in runs["absorb"].state.histories]
    assert len(runs["after"].attempts) == 1  # not run again


def test_a_task_allowed_to_fail_leaves_no_failed_task_run_to_restart() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(f"tasks:\n  - id: a\n    type: {FAIL}\n    allowFailure: true\n"))
    exec_id = sim.create("ns", "f")
    sim.run()
    ended = sim.execution(exec_id)
    sim.restart(exec_id)
    sim.run()
    after = sim.execution(exec_id)
    assert after.state.current == ended.state.current
    assert after.metadata.attempt_number == 1
