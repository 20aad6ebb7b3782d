"""Retries on the virtual clock: intervals, maxAttempt, maxDuration, warningOnRetry, flow retry."""

from __future__ import annotations

from datetime import timedelta

from common.models.execution import Execution
from common.models.state import State

from .core_util import flow_yaml, one, run
from .harness import START, Sim


def _attempt_starts(ex, task_id: str = "t") -> list[timedelta]:  # type: ignore[no-untyped-def]
    tr = one(ex, task_id)
    return [a.state.start_date - START for a in tr.attempts]  # type: ignore[operator]


def _retry_flow(retry: str, task: str = "io.kestra.plugin.core.execution.Fail") -> str:
    return f"""
tasks:
  - id: t
    type: {task}
    retry:
{retry}
"""


def test_constant_interval() -> None:
    _, ex = run(_retry_flow("      type: constant\n      interval: PT10S\n      maxAttempt: 3\n"))
    assert ex.state.current == State.FAILED
    tr = one(ex, "t")
    assert len(tr.attempts) == 3
    assert [a.state.current for a in tr.attempts] == [State.FAILED] * 3
    assert _attempt_starts(ex) == [timedelta(0), timedelta(seconds=10), timedelta(seconds=20)]
    assert tr.state.current == State.FAILED
    assert State.RETRYING in [h.state for h in tr.state.histories]


def test_exponential_interval() -> None:
    _, ex = run(
        _retry_flow(
            "      type: exponential\n      interval: PT1S\n      maxInterval: PT5S\n"
            "      delayFactor: 2\n      maxAttempt: 5\n"
        )
    )
    assert ex.state.current == State.FAILED
    # delays 1, 2, 4, then capped at 5
    assert _attempt_starts(ex) == [timedelta(seconds=s) for s in (0, 1, 3, 7, 12)]


def test_random_interval_is_within_bounds_and_deterministic() -> None:
    flow = _retry_flow(
        "      type: random\n      minInterval: PT1S\n"
        "      maxInterval: PT3S\n      maxAttempt: 4\n"
    )
    _, ex = run(flow)
    starts = _attempt_starts(ex)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(gaps) == 3
    assert all(timedelta(seconds=1) <= g <= timedelta(seconds=3) for g in gaps)
    _, again = run(flow)
    assert _attempt_starts(again) == starts


def test_max_attempt_counts_attempts_and_success_stops_retrying() -> None:
    def outcome(wt):  # type: ignore[no-untyped-def]
        return (State.SUCCESS, {}, None) if wt.attempt == 3 else (State.FAILED, None, "no")

    _, ex = run(
        _retry_flow(
            "      type: constant\n      interval: PT1S\n      maxAttempt: 5\n",
            "io.kestra.plugin.core.log.Log\n    message: m",
        ),
        outcome=outcome,
    )
    tr = one(ex, "t")
    assert len(tr.attempts) == 3
    assert [a.state.current for a in tr.attempts] == [State.FAILED, State.FAILED, State.SUCCESS]
    assert tr.state.current == State.SUCCESS
    assert ex.state.current == State.SUCCESS


def test_max_attempt_one_means_no_retry() -> None:
    _, ex = run(_retry_flow("      type: constant\n      interval: PT1S\n      maxAttempt: 1\n"))
    assert len(one(ex, "t").attempts) == 1


def test_max_duration_stops_retries() -> None:
    _, ex = run(
        _retry_flow(
            "      type: constant\n      interval: PT10S\n      maxAttempt: 100\n"
            "      maxDuration: PT25S\n"
        )
    )
    assert ex.state.current == State.FAILED
    starts = _attempt_starts(ex)
    assert starts[-1] <= timedelta(seconds=25)
    assert len(starts) == 3


def test_warning_on_retry() -> None:
    def outcome(wt):  # type: ignore[no-untyped-def]
        return (State.SUCCESS, {}, None) if wt.attempt == 2 else (State.FAILED, None, "no")

    _, ex = run(
        _retry_flow(
            "      type: constant\n      interval: PT1S\n      maxAttempt: 3\n"
            "      warningOnRetry: true\n",
            "io.kestra.plugin.core.log.Log\n    message: m",
        ),
        outcome=outcome,
    )
    assert one(ex, "t").state.current == State.WARNING
    assert ex.state.current == State.WARNING


def test_retry_of_a_child_in_a_sequential() -> None:
    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: t
                type: io.kestra.plugin.core.execution.Fail
                retry:
                  type: constant
                  interval: PT1S
                  maxAttempt: 3
              - id: never
                type: io.kestra.plugin.core.log.Log
                message: n
        """
    )
    assert ex.state.current == State.FAILED
    assert [tr.task_id for tr in ex.task_run_list] == ["seq", "t"]
    assert len(one(ex, "t").attempts) == 3


def test_flow_retry_failed_task_applies_to_tasks_without_retry() -> None:
    _, ex = run(
        """
        retry:
          behavior: RETRY_FAILED_TASK
          type: constant
          maxAttempt: 4
          interval: PT1S
        tasks:
          - id: t
            type: io.kestra.plugin.core.execution.Fail
        """
    )
    assert ex.state.current == State.FAILED
    assert len(one(ex, "t").attempts) == 4


def _executions(sim: Sim) -> list[State]:
    return [s.execution.state.current for s in sim.states.values()]


def test_flow_retry_create_new_execution() -> None:
    sim, ex = run(
        """
        retry:
          behavior: CREATE_NEW_EXECUTION
          type: constant
          maxAttempt: 3
          interval: PT1S
        tasks:
          - id: t
            type: io.kestra.plugin.core.execution.Fail
        """
    )
    assert ex.state.current == State.RETRIED
    assert sorted(_executions(sim)) == sorted([State.RETRIED, State.RETRIED, State.FAILED])
    others = [s.execution for s in sim.states.values() if s.execution.id != ex.id]
    assert all(o.original_id == ex.id for o in others)
    assert sorted(o.metadata.attempt_number for o in others) == [2, 3]
    assert all(len(one(o, "t").attempts) == 1 for o in others)


def test_task_retry_create_new_execution() -> None:
    sim, ex = run(
        _retry_flow(
            "      behavior: CREATE_NEW_EXECUTION\n      type: constant\n"
            "      maxAttempt: 3\n      interval: PT1S\n"
        )
    )
    assert sorted(_executions(sim)) == sorted([State.RETRIED, State.RETRIED, State.FAILED])


def _chain(body: str) -> list[Execution]:
    """The executions a CREATE_NEW_EXECUTION retry made, first to last.

    A chain that never ends (the bug these tests guard against) fails ``run`` with "did not
    settle" instead of looping for ever.
    """
    sim = Sim()
    sim.deploy(flow_yaml(body))
    sim.create("ns", "f")
    sim.run(max_steps=5_000)
    return sorted(
        (s.execution for s in sim.states.values()), key=lambda e: e.metadata.attempt_number
    )


def _running_since(ex: Execution) -> timedelta:
    return next(h.date for h in ex.state.histories if h.state == State.RUNNING) - START


def test_task_retry_create_new_execution_stops_at_max_duration_without_max_attempt() -> None:
    chain = _chain(
        _retry_flow(
            "      behavior: CREATE_NEW_EXECUTION\n      type: constant\n"
            "      interval: PT2S\n      maxDuration: PT5S\n"
        )
    )
    # attempts at 0s, 2s, 4s; a fourth at 6s would pass 5s after the first execution began
    assert [e.state.current for e in chain] == [State.RETRIED, State.RETRIED, State.FAILED]
    assert [e.metadata.attempt_number for e in chain] == [1, 2, 3]
    assert [_running_since(e) for e in chain] == [timedelta(seconds=s) for s in (0, 2, 4)]
    first = chain[0]
    assert all(e.metadata.original_created_date == first.state.start_date for e in chain[1:])
    assert all(e.original_id == first.id for e in chain[1:])


def test_flow_retry_create_new_execution_stops_at_max_duration_without_max_attempt() -> None:
    chain = _chain(
        """
        retry:
          behavior: CREATE_NEW_EXECUTION
          type: exponential
          interval: PT1S
          maxInterval: PT10S
          maxDuration: PT8S
        tasks:
          - id: t
            type: io.kestra.plugin.core.execution.Fail
        """
    )
    # delays 1, 2, 4 (attempts at 0, 1, 3, 7); the next one, 8s later, would pass 8s
    assert [e.state.current for e in chain] == [State.RETRIED] * 3 + [State.FAILED]
    assert [_running_since(e) for e in chain] == [timedelta(seconds=s) for s in (0, 1, 3, 7)]


def test_create_new_execution_waits_for_the_interval_and_counts_attempts_across_executions() -> (
    None
):
    chain = _chain(
        _retry_flow(
            "      behavior: CREATE_NEW_EXECUTION\n      type: constant\n"
            "      maxAttempt: 3\n      interval: PT30S\n      maxDuration: PT1H\n"
        )
    )
    assert [e.state.current for e in chain] == [State.RETRIED, State.RETRIED, State.FAILED]
    assert [_running_since(e) for e in chain] == [timedelta(seconds=s) for s in (0, 30, 60)]
