"""Subflow, Pause and WaitFor."""

from __future__ import annotations

from datetime import timedelta

from common.models.state import State

from .core_util import flow_yaml, history, one, order, run, states
from .harness import START, Sim

CHILD = """
id: child
namespace: ns
inputs:
  - id: n
    type: INT
  - id: fail
    type: BOOLEAN
    defaults: false
labels:
  from: child
tasks:
  - id: r
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.n * 2 }}"
  - id: maybe_fail
    type: io.kestra.plugin.core.execution.Fail
    runIf: "{{ inputs.fail }}"
outputs:
  - id: doubled
    type: INT
    value: "{{ outputs.r.value }}"
"""


def _parent(extra: str = "", inputs: str = "n: 21") -> str:
    return f"""
labels:
  team: data
tasks:
  - id: sub
    type: io.kestra.plugin.core.flow.Subflow
    namespace: ns
    flowId: child
    inputs:
      {inputs}
{extra}
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ outputs.sub.outputs.doubled }}}}"
"""


def _child(sim: Sim, parent_id: str):  # type: ignore[no-untyped-def]
    return next(
        s.execution
        for s in sim.states.values()
        if s.execution.trigger and s.execution.trigger.variables.get("executionId") == parent_id
    )


def _sim() -> Sim:
    sim = Sim()
    sim.deploy(CHILD)
    return sim


def test_subflow_waits_and_gets_state_and_outputs() -> None:
    sim, ex = run(_parent(), sim=_sim())
    child = _child(sim, ex.id)
    assert child.state.current == State.SUCCESS
    assert child.outputs == {"doubled": 42}
    sub = one(ex, "sub")
    assert sub.state.current == State.SUCCESS
    assert sub.outputs["executionId"] == child.id  # type: ignore[index]
    assert sub.outputs["outputs"] == {"doubled": 42}  # type: ignore[index]
    assert one(ex, "after").outputs == {"value": "42"}
    assert ex.state.current == State.SUCCESS
    assert child.label_map()["system.correlationId"] == ex.id


def test_failed_child_fails_the_subflow_task() -> None:
    sim, ex = run(_parent(inputs="n: 1\n      fail: true"), sim=_sim())
    assert _child(sim, ex.id).state.current == State.FAILED
    assert states(ex) == {"sub": State.FAILED}
    assert ex.state.current == State.FAILED


def test_transmit_failed_false() -> None:
    sim, ex = run(
        _parent("    transmitFailed: false", inputs="n: 1\n      fail: true").replace(
            "outputs.sub.outputs.doubled", "outputs.sub.state"
        ),
        sim=_sim(),
    )
    assert _child(sim, ex.id).state.current == State.FAILED
    assert one(ex, "sub").state.current == State.SUCCESS
    assert ex.state.current == State.SUCCESS


def test_wait_false_does_not_wait() -> None:
    sim = _sim()
    sim.hold_workers = True
    sim.deploy(flow_yaml(_parent("    wait: false").replace("outputs.sub.outputs.doubled", "1")))
    eid = sim.create("ns", "f")
    sim.run(until=lambda: eid in sim.states and one(sim.execution(eid), "sub").current.terminal)
    assert one(sim.execution(eid), "sub").state.current == State.SUCCESS
    sim.hold_workers = False
    sim.run()
    assert sim.execution(eid).state.current == State.SUCCESS
    assert _child(sim, eid).state.current == State.SUCCESS


def test_inherit_labels() -> None:
    sim, ex = run(_parent("    inheritLabels: true"), sim=_sim())
    labels = _child(sim, ex.id).label_map()
    assert labels["team"] == "data"
    sim2, ex2 = run(_parent(), sim=_sim())
    assert "team" not in _child(sim2, ex2.id).label_map()


def test_child_inputs_are_validated() -> None:
    sim, ex = run(_parent(inputs="n: not-a-number"), sim=_sim())
    child = _child(sim, ex.id)
    assert child.state.current == State.FAILED
    assert child.task_run_list == []
    assert one(ex, "sub").state.current == State.FAILED
    assert ex.state.current == State.FAILED


def test_missing_child_flow_fails_the_parent_task() -> None:
    sim, ex = run(_parent().replace("flowId: child", "flowId: nope"))
    assert one(ex, "sub").state.current == State.FAILED
    assert ex.state.current == State.FAILED


# ---------------------------------------------------------------- Pause


def test_pause_with_delay_resumes_by_itself() -> None:
    _, ex = run(
        """
        tasks:
          - id: p
            type: io.kestra.plugin.core.flow.Pause
            pauseDuration: PT5M
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: after
        """
    )
    assert ex.state.current == State.SUCCESS
    p = one(ex, "p")
    assert State.PAUSED in history(p)
    assert State.PAUSED in history(ex)
    assert one(ex, "after").state.start_date == START + timedelta(minutes=5)


def test_pause_timeout_fails() -> None:
    _, ex = run(
        """
        tasks:
          - id: p
            type: io.kestra.plugin.core.flow.Pause
            timeout: PT1M
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: after
        """
    )
    assert states(ex) == {"p": State.FAILED}
    assert ex.state.current == State.FAILED


PAUSE_RESUME = """
tasks:
  - id: p
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
      - id: note
        type: STRING
        required: false
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.p.onResume.approved }}"
"""


def test_pause_waits_for_resume_and_on_resume_inputs_become_outputs() -> None:
    sim, ex = run(PAUSE_RESUME)
    assert ex.state.current == State.PAUSED
    assert states(ex) == {"p": State.PAUSED}
    sim.resume(ex.id, {"approved": "true"})
    sim.run()
    ex = sim.execution(ex.id)
    assert ex.state.current == State.SUCCESS
    assert one(ex, "p").outputs["onResume"]["approved"] is True  # type: ignore[index]
    assert one(ex, "after").outputs == {"value": "true"}


def test_pause_resume_with_invalid_inputs_stays_paused() -> None:
    sim, ex = run(PAUSE_RESUME)
    sim.resume(ex.id, {"approved": "maybe"})
    sim.run()
    assert sim.execution(ex.id).state.current == State.PAUSED
    assert any(log.level == "ERROR" for log in sim.logs)


def test_kill_a_paused_execution() -> None:
    sim, ex = run(PAUSE_RESUME)
    sim.kill(ex.id)
    sim.run()
    ex = sim.execution(ex.id)
    assert ex.state.current == State.KILLED
    assert states(ex) == {"p": State.KILLED}


# ---------------------------------------------------------------- WaitFor


def test_wait_for_condition() -> None:
    _, ex = run(
        """
        tasks:
          - id: w
            type: io.kestra.plugin.core.flow.WaitFor
            condition: "{{ outputs.o.values.count == '3' }}"
            checkFrequency:
              interval: PT1S
            tasks:
              - id: o
                type: io.kestra.plugin.core.output.OutputValues
                values:
                  count: "{{ outputs.w.iterationCount + 1 }}"
        """
    )
    assert ex.state.current == State.SUCCESS
    assert one(ex, "w").outputs == {"iterationCount": 2}
    # Kestra counts iterations from 1 (LoopUntilCaseTest, waitfor-multiple-tasks.yaml)
    assert [tr.iteration for tr in ex.task_run_list if tr.task_id == "o"] == [1, 2]


def _max_iter(fail: bool) -> str:
    return f"""
tasks:
  - id: w
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{{{{ outputs.o.values.count == '10' }}}}"
    checkFrequency:
      maxIterations: 3
      interval: PT1S
    failOnMaxReached: {str(fail).lower()}
    tasks:
      - id: o
        type: io.kestra.plugin.core.output.OutputValues
        values:
          count: "{{{{ outputs.w.iterationCount + 1 }}}}"
"""


def test_wait_for_max_iterations_fail() -> None:
    _, ex = run(_max_iter(True))
    assert ex.state.current == State.FAILED
    assert len([tr for tr in ex.task_run_list if tr.task_id == "o"]) == 3


def test_wait_for_max_iterations_success() -> None:
    _, ex = run(_max_iter(False))
    assert ex.state.current == State.SUCCESS
    assert order(ex).count("o") == 3
