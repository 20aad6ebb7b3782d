"""Dag: tasks start once their dependencies ended without failing."""

from __future__ import annotations

from common.models.state import State

from .core_util import fail_ids, flow_yaml, non_terminal, order, run, states
from .harness import Sim

DAG = """
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    concurrent: {concurrent}
    tasks:
      - task:
          id: a
          type: io.kestra.plugin.core.log.Log
          message: a
      - task:
          id: b
          type: io.kestra.plugin.core.log.Log
          message: b
        dependsOn: [a]
      - task:
          id: c
          type: io.kestra.plugin.core.log.Log
          message: c
        dependsOn: [a]
      - task:
          id: d
          type: io.kestra.plugin.core.log.Log
          message: d
        dependsOn: [b, c]
"""


def test_depends_on_order() -> None:
    _, ex = run(DAG.format(concurrent=0))
    assert ex.state.current == State.SUCCESS
    ids = order(ex)
    assert ids[0] == "dag"
    assert ids.index("a") < ids.index("b") < ids.index("d")
    assert ids.index("c") < ids.index("d")
    by_id = {tr.task_id: tr for tr in ex.task_run_list}
    for child, deps in {"b": ["a"], "c": ["a"], "d": ["b", "c"]}.items():
        for dep in deps:
            assert by_id[dep].state.end_date <= by_id[child].state.start_date  # type: ignore[operator]


def test_independent_tasks_run_concurrently() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(DAG.format(concurrent=0)))
    eid = sim.create("ns", "f")
    sim.run()
    sim.inbox.extend(sim._work(sim.worker_queue.popleft()))  # a
    sim.run()
    assert sorted(wt.task_run.task_id for wt in sim.worker_queue) == ["b", "c"]
    sim.hold_workers = False
    sim.run()
    assert sim.execution(eid).state.current == State.SUCCESS


def test_concurrent_limit() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(DAG.format(concurrent=1)))
    eid = sim.create("ns", "f")
    sim.run()
    peak = 0
    while sim.worker_queue:
        sim.inbox.extend(sim._work(sim.worker_queue.popleft()))
        sim.run()
        active = [tr for tr in non_terminal(sim.execution(eid)) if tr.task_id != "dag"]
        peak = max(peak, len(active))
    assert peak == 1
    assert sim.execution(eid).state.current == State.SUCCESS


def test_failed_dependency_stops_dependents() -> None:
    _, ex = run(DAG.format(concurrent=0), outcome=fail_ids("b"))
    st = states(ex)
    assert st["b"] == State.FAILED
    assert "d" not in st
    assert st["c"] == State.SUCCESS
    assert st["dag"] == State.FAILED
    assert ex.state.current == State.FAILED


def test_cycle_is_rejected_at_parse() -> None:
    import pytest

    from common.errors import LannerError

    sim = Sim()
    with pytest.raises((LannerError, ValueError)):
        sim.deploy(
            flow_yaml(
                """
                tasks:
                  - id: dag
                    type: io.kestra.plugin.core.flow.Dag
                    tasks:
                      - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}
                        dependsOn: [b]
                      - task: {id: b, type: io.kestra.plugin.core.log.Log, message: b}
                        dependsOn: [a]
                """
            )
        )
