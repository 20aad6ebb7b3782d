"""Parallel: children together, at most ``concurrent`` of them at a time."""

from __future__ import annotations

from common.models.state import State

from .core_util import flow_yaml, non_terminal, order, run, states
from .harness import Sim

PARALLEL = """
tasks:
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: {concurrent}
    tasks:
{children}
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
"""


def _children(n: int) -> str:
    return "".join(
        f"      - id: t{i}\n        type: io.kestra.plugin.core.log.Log\n        message: m{i}\n"
        for i in range(n)
    )


def _leaf_active(sim: Sim, eid: str) -> int:
    ex = sim.execution(eid)
    return sum(1 for tr in non_terminal(ex) if tr.task_id.startswith("t"))


def _run_held(concurrent: int, n: int) -> tuple[Sim, str, int]:
    """Step the simulation one worker task at a time, recording the max active children."""
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(PARALLEL.format(concurrent=concurrent, children=_children(n))))
    eid = sim.create("ns", "f")
    sim.run()
    peak = _leaf_active(sim, eid)
    while sim.worker_queue:
        wt = sim.worker_queue.popleft()
        sim.inbox.extend(sim._work(wt))
        sim.run()
        peak = max(peak, _leaf_active(sim, eid))
    return sim, eid, peak


def test_all_children_start_together_without_limit() -> None:
    sim, eid, peak = _run_held(0, 4)
    assert peak == 4
    ex = sim.execution(eid)
    assert ex.state.current == State.SUCCESS
    assert order(ex)[-1] == "after"


def test_concurrent_limit_is_respected() -> None:
    for limit in (1, 2, 3):
        sim, eid, peak = _run_held(limit, 5)
        assert peak == limit, limit
        ex = sim.execution(eid)
        assert ex.state.current == State.SUCCESS
        assert sorted(tr.task_id for tr in ex.task_run_list if tr.task_id.startswith("t")) == [
            f"t{i}" for i in range(5)
        ]


def test_first_batch_created_at_once() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(PARALLEL.format(concurrent=2, children=_children(4))))
    eid = sim.create("ns", "f")
    sim.run()
    ex = sim.execution(eid)
    assert [tr.task_id for tr in ex.task_run_list] == ["par", "t0", "t1"]
    assert len(sim.worker_queue) == 2


def test_a_failed_child_fails_parallel_after_running_children_end() -> None:
    def outcome(wt):  # type: ignore[no-untyped-def]
        tid = wt.task_run.task_id
        return (State.FAILED, None, "boom") if tid == "t0" else (State.SUCCESS, {}, None)

    _, ex = run(PARALLEL.format(concurrent=0, children=_children(3)), outcome=outcome)
    st = states(ex)
    assert st["par"] == State.FAILED
    assert st["t0"] == State.FAILED
    assert st["t1"] == State.SUCCESS and st["t2"] == State.SUCCESS
    assert "after" not in st
    assert ex.state.current == State.FAILED


def test_failure_with_limit_does_not_start_remaining_children() -> None:
    def outcome(wt):  # type: ignore[no-untyped-def]
        tid = wt.task_run.task_id
        return (State.FAILED, None, "boom") if tid == "t0" else (State.SUCCESS, {}, None)

    _, ex = run(PARALLEL.format(concurrent=1, children=_children(3)), outcome=outcome)
    assert order(ex) == ["par", "t0"]
    assert ex.state.current == State.FAILED


def test_nested_parallel() -> None:
    _, ex = run(
        """
        tasks:
          - id: p1
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: p2
                type: io.kestra.plugin.core.flow.Parallel
                tasks:
                  - id: a
                    type: io.kestra.plugin.core.log.Log
                    message: a
                  - id: b
                    type: io.kestra.plugin.core.log.Log
                    message: b
              - id: c
                type: io.kestra.plugin.core.log.Log
                message: c
        """
    )
    assert ex.state.current == State.SUCCESS
    assert set(states(ex)) == {"p1", "p2", "a", "b", "c"}
