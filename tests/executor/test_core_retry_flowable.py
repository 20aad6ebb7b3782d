"""Retries on flowable and Subflow tasks, on the virtual clock (Kestra's RetryCaseTest).

A ``retry`` on a flowable task governs the failed task runs inside it that have none of their
own: each runs again as a new attempt, with that policy's type, interval and limits. A Subflow
task that failed runs again as a new attempt that starts a new subflow execution.
"""

from __future__ import annotations

from datetime import timedelta

from common.models.execution import Execution, TaskRun
from common.models.messages import WorkerTask
from common.models.state import State

from .core_util import FAIL, FLOW, LOG, flow_yaml, one, order, run
from .harness import START, Sim


def _starts(tr: TaskRun) -> list[timedelta]:
    return [a.state.start_date - START for a in tr.attempts]  # type: ignore[operator]


def _seconds(*values: float) -> list[timedelta]:
    return [timedelta(seconds=v) for v in values]


def _child_fails_once(wt: WorkerTask) -> tuple[State, dict[str, object] | None, str | None]:
    if wt.task_run.task_id == "child" and wt.attempt == 1:
        return (State.FAILED, None, "not yet")
    return (State.SUCCESS, {}, None)


def test_retry_on_a_sequential_retries_its_failed_child() -> None:
    # Kestra's retry-flowable.yaml: RetryCaseTest#retryFlowable
    _, ex = run(
        f"""
        tasks:
          - id: flowable
            type: {FLOW}.Sequential
            retry:
              type: constant
              interval: PT1S
              maxAttempt: 3
            tasks:
              - id: child
                type: {FAIL}
        """
    )
    assert ex.state.current == State.FAILED
    assert order(ex) == ["flowable", "child"]
    child = one(ex, "child")
    assert [a.state.current for a in child.attempts] == [State.FAILED] * 3
    assert _starts(child) == _seconds(0, 1, 2)
    assert State.RETRYING in [h.state for h in child.state.histories]
    assert one(ex, "flowable").state.current == State.FAILED


def test_retry_on_an_outer_flowable_governs_the_children_of_inner_ones() -> None:
    _, ex = run(
        f"""
        tasks:
          - id: outer
            type: {FLOW}.Sequential
            retry:
              type: constant
              interval: PT5S
              maxAttempt: 2
            tasks:
              - id: inner
                type: {FLOW}.Sequential
                tasks:
                  - id: child
                    type: {FAIL}
        """
    )
    assert ex.state.current == State.FAILED
    assert _starts(one(ex, "child")) == _seconds(0, 5)


def test_a_task_own_retry_wins_over_its_flowable_one() -> None:
    _, ex = run(
        f"""
        tasks:
          - id: flowable
            type: {FLOW}.Sequential
            retry:
              type: constant
              interval: PT1S
              maxAttempt: 5
            tasks:
              - id: child
                type: {FAIL}
                retry:
                  type: constant
                  interval: PT10S
                  maxAttempt: 2
        """
    )
    assert _starts(one(ex, "child")) == _seconds(0, 10)


def test_retry_on_a_foreach_retries_every_iteration() -> None:
    # Kestra's retry-flowable-parallel.yaml: RetryCaseTest#retryFlowableParallel
    _, ex = run(
        f"""
        tasks:
          - id: flowable
            type: {FLOW}.ForEach
            concurrencyLimit: 0
            values: [0, 1]
            retry:
              type: constant
              interval: PT1S
              maxAttempt: 3
            tasks:
              - id: child
                type: {FAIL}
        """
    )
    assert ex.state.current == State.FAILED
    children = [tr for tr in ex.task_run_list if tr.task_id == "child"]
    assert sorted(tr.value for tr in children) == ["0", "1"]  # type: ignore[type-var]
    assert [len(tr.attempts) for tr in children] == [3, 3]


def test_flowable_retry_honours_exponential_delays_and_max_duration() -> None:
    _, ex = run(
        f"""
        tasks:
          - id: flowable
            type: {FLOW}.Sequential
            retry:
              type: exponential
              interval: PT1S
              maxInterval: PT1M
              maxDuration: PT5S
            tasks:
              - id: child
                type: {FAIL}
        """
    )
    # delays 1 s then 2 s; the next attempt, 4 s later at 7 s, would pass maxDuration
    assert _starts(one(ex, "child")) == _seconds(0, 1, 3)


def test_flowable_retry_random_delays_stay_within_bounds() -> None:
    _, ex = run(
        f"""
        tasks:
          - id: flowable
            type: {FLOW}.Sequential
            retry:
              type: random
              minInterval: PT2S
              maxInterval: PT4S
              maxAttempt: 4
            tasks:
              - id: child
                type: {FAIL}
        """
    )
    starts = _starts(one(ex, "child"))
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(gaps) == 3
    assert all(timedelta(seconds=2) <= g <= timedelta(seconds=4) for g in gaps)


def test_flowable_retry_warning_on_retry_and_the_sequence_goes_on() -> None:
    _, ex = run(
        f"""
        tasks:
          - id: flowable
            type: {FLOW}.Sequential
            retry:
              type: constant
              interval: PT1S
              maxAttempt: 3
              warningOnRetry: true
            tasks:
              - id: child
                type: {LOG}
                message: m
              - id: next
                type: {LOG}
                message: n
        """,
        outcome=_child_fails_once,
    )
    child = one(ex, "child")
    assert [a.state.current for a in child.attempts] == [State.FAILED, State.SUCCESS]
    assert child.state.current == State.WARNING
    assert len(one(ex, "next").attempts) == 1
    assert ex.state.current == State.WARNING


def _subflow_sim(parent: str, *, child_tasks: str = f"  - id: fail\n    type: {FAIL}\n") -> Sim:
    sim = Sim()
    sim.deploy(flow_yaml("tasks:\n" + child_tasks, flow_id="child"))
    sim.deploy(flow_yaml(parent))
    return sim


def _children(sim: Sim, parent: Execution) -> list[Execution]:
    found = [
        s.execution
        for s in sim.states.values()
        if s.execution.trigger is not None
        and s.execution.trigger.variables.get("executionId") == parent.id
    ]
    return sorted(found, key=lambda e: e.state.start_date)  # type: ignore[arg-type, return-value]


SUBFLOW = f"""
        tasks:
          - id: subflow
            type: {FLOW}.Subflow
            namespace: ns
            flowId: child
            retry:
              type: constant
              interval: PT1S
              maxAttempt: 3
        """


def test_a_failed_subflow_task_starts_a_new_subflow_execution_per_attempt() -> None:
    sim = _subflow_sim(SUBFLOW)
    parent_id = sim.create("ns", "f")
    sim.run(max_steps=5_000)
    parent = sim.execution(parent_id)
    assert parent.state.current == State.FAILED
    tr = one(parent, "subflow")
    assert [a.state.current for a in tr.attempts] == [State.FAILED] * 3
    assert _starts(tr) == _seconds(0, 1, 2)
    children = _children(sim, parent)
    assert [c.state.current for c in children] == [State.FAILED] * 3
    assert [c.state.start_date - START for c in children] == _seconds(0, 1, 2)  # type: ignore[operator]
    assert tr.outputs is not None and tr.outputs["executionId"] == children[-1].id


def test_a_subflow_task_that_succeeds_on_a_retry_succeeds() -> None:
    sim = _subflow_sim(SUBFLOW, child_tasks=f"  - id: flaky\n    type: {LOG}\n    message: m\n")
    failed: set[str] = set()

    def first_child_fails(wt: WorkerTask) -> tuple[State, dict[str, object] | None, str | None]:
        if not failed or wt.task_run.execution_id in failed:
            failed.add(wt.task_run.execution_id)
            return (State.FAILED, None, "first child execution fails")
        return (State.SUCCESS, {}, None)

    sim.outcome = first_child_fails
    parent_id = sim.create("ns", "f")
    sim.run(max_steps=5_000)
    parent = sim.execution(parent_id)
    tr = one(parent, "subflow")
    assert [a.state.current for a in tr.attempts] == [State.FAILED, State.SUCCESS]
    assert tr.state.current == State.SUCCESS
    assert parent.state.current == State.SUCCESS
    assert [c.state.current for c in _children(sim, parent)] == [State.FAILED, State.SUCCESS]


def test_flow_retry_applies_to_a_subflow_task() -> None:
    # Kestra's retry-subflow.yaml: RetryCaseTest#retrySubflow
    sim = _subflow_sim(
        f"""
        retry:
          type: constant
          interval: PT1S
          maxAttempt: 3
        tasks:
          - id: subflow
            type: {FLOW}.Subflow
            namespace: ns
            flowId: child
        """
    )
    parent_id = sim.create("ns", "f")
    sim.run(max_steps=5_000)
    parent = sim.execution(parent_id)
    assert parent.state.current == State.FAILED
    assert len(one(parent, "subflow").attempts) == 3
    assert len(_children(sim, parent)) == 3


def test_a_sequential_retry_governs_a_subflow_inside_it() -> None:
    sim = _subflow_sim(
        f"""
        tasks:
          - id: flowable
            type: {FLOW}.Sequential
            retry:
              type: constant
              interval: PT1S
              maxAttempt: 2
            tasks:
              - id: subflow
                type: {FLOW}.Subflow
                namespace: ns
                flowId: child
        """
    )
    parent_id = sim.create("ns", "f")
    sim.run(max_steps=5_000)
    parent = sim.execution(parent_id)
    assert parent.state.current == State.FAILED
    assert len(one(parent, "subflow").attempts) == 2
    assert len(_children(sim, parent)) == 2


def test_kill_while_a_subflow_task_waits_for_its_retry() -> None:
    sim = _subflow_sim(SUBFLOW.replace("PT1S", "PT1H"))
    parent_id = sim.create("ns", "f")

    def retrying() -> bool:
        state = sim.states.get(parent_id)
        runs = (
            [tr for tr in state.execution.task_run_list if tr.task_id == "subflow"] if state else []
        )
        return bool(runs) and runs[0].state.current == State.RETRYING

    sim.run(max_steps=5_000, until=retrying)
    assert retrying()
    sim.kill(parent_id)
    sim.run(max_steps=5_000)
    parent = sim.execution(parent_id)
    assert parent.state.current == State.KILLED
    assert one(parent, "subflow").state.current == State.KILLED
    assert len(_children(sim, parent)) == 1
