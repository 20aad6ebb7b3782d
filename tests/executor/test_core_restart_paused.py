"""Restart of a PAUSED execution in the core (Kestra's ``ExecutionService.restart`` accepts
``isTerminated() || isPaused()`` and restarts from the task runs that are FAILED or PAUSED;
``Pause.needPause`` does not pause a task run whose history already holds PAUSED, so the
restarted Pause carries on; kestra-io/kestra@58c1ca2)."""

from __future__ import annotations

from common.models.state import State

from .core_util import flow_yaml, history, one
from .harness import Sim

PAUSE_THEN_STEP = """\
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT1H
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: after
"""


def test_a_paused_execution_restarts_past_its_pause() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(PAUSE_THEN_STEP))
    exec_id = sim.create("ns", "f")
    sim.run(until=lambda: exec_id in sim.states and sim.states[exec_id].wakeups != {})
    assert sim.execution(exec_id).state.current == State.PAUSED
    assert sim.states[exec_id].wakeups  # the pause's own resume timer
    sim.restart(exec_id)
    sim.run()
    ex = sim.execution(exec_id)
    assert ex.state.current == State.SUCCESS
    assert ex.metadata.attempt_number == 2
    pause = history(one(ex, "pause"))
    assert pause[-4:] == [State.PAUSED, State.RESTARTED, State.RUNNING, State.SUCCESS]
    assert one(ex, "after").state.current == State.SUCCESS
    assert not sim.states[exec_id].wakeups  # its timer dropped with it


def test_a_manual_pause_is_not_restarted() -> None:
    """Kestra: no FAILED or PAUSED task run -> nothing to restart (the webserver's 422)."""
    sim = Sim(hold_workers=True)
    sim.deploy(
        flow_yaml(
            PAUSE_THEN_STEP.replace(
                "pause\n    type: io.kestra.plugin.core.flow.Pause\n    pauseDuration: PT1H",
                "first\n    type: io.kestra.plugin.core.debug.Return\n    format: x",
            )
        )
    )
    exec_id = sim.create("ns", "f")
    sim.run()
    from common.models.messages import ManualPause

    sim.send(ManualPause(id="pause:1", execution_id=exec_id))
    sim.run()
    assert sim.execution(exec_id).state.current == State.PAUSED
    before = sim.execution(exec_id).metadata.attempt_number
    sim.restart(exec_id)
    sim.run()
    assert sim.execution(exec_id).state.current == State.PAUSED
    assert sim.execution(exec_id).metadata.attempt_number == before
