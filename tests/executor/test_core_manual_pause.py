"""Pausing a RUNNING execution from the API (Kestra's ``ExecutionService.pause``, the
``actions/pause`` route): what runs finishes, nothing new starts, ``Resume`` carries on,
``Kill`` ends it."""

from __future__ import annotations

from common.models.messages import ManualPause
from common.models.state import State

from .core_util import flow_yaml, states
from .harness import Sim

TWO_STEPS = """\
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: b
    type: io.kestra.plugin.core.debug.Return
    format: two
"""


def paused_while_a_runs() -> tuple[Sim, str]:
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(TWO_STEPS))
    exec_id = sim.create("ns", "f")
    sim.run()  # `a` is sent to a worker, which holds it
    sim.send(ManualPause(id="pause:1", execution_id=exec_id))
    sim.run()
    assert sim.execution(exec_id).state.current == State.PAUSED
    sim.hold_workers = False
    sim.run()  # `a` ends while paused: `b` does not start
    return sim, exec_id


def test_a_paused_execution_starts_nothing_until_resumed() -> None:
    sim, exec_id = paused_while_a_runs()
    ex = sim.execution(exec_id)
    assert ex.state.current == State.PAUSED
    assert states(ex) == {"a": State.SUCCESS}
    sim.resume(exec_id)
    sim.run()
    ex = sim.execution(exec_id)
    assert ex.state.current == State.SUCCESS
    assert states(ex) == {"a": State.SUCCESS, "b": State.SUCCESS}


def test_kill_a_manually_paused_execution() -> None:
    sim, exec_id = paused_while_a_runs()
    sim.kill(exec_id)
    sim.run()
    ex = sim.execution(exec_id)
    assert ex.state.current == State.KILLED
    assert "b" not in states(ex)


def test_only_a_running_execution_pauses() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(TWO_STEPS))
    exec_id = sim.create("ns", "f")
    sim.run()
    sim.send(ManualPause(id="pause:late", execution_id=exec_id))
    sim.run()
    assert sim.execution(exec_id).state.current == State.SUCCESS
