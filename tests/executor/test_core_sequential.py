"""Sequential: children one after the other; a failure stops the rest."""

from __future__ import annotations

from common.models.state import State

from .core_util import fail_ids, order, run, state_of, states


def test_children_run_in_order_and_see_previous_outputs() -> None:
    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: a
                type: io.kestra.plugin.core.debug.Return
                format: "{{ 1 + 1 }}"
              - id: b
                type: io.kestra.plugin.core.debug.Return
                format: "b{{ outputs.a.value }}"
          - id: c
            type: io.kestra.plugin.core.log.Log
            message: done
        """
    )
    assert ex.state.current == State.SUCCESS
    assert order(ex) == ["seq", "a", "b", "c"]
    assert states(ex) == {k: State.SUCCESS for k in ("seq", "a", "b", "c")}
    assert ex.task_run_list[2].outputs == {"value": "b2"}
    seq = ex.task_run_list[0]
    assert all(tr.parent_task_run_id == seq.id for tr in ex.task_run_list[1:3])


def test_failure_stops_following_children_and_the_flow() -> None:
    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: a
                type: io.kestra.plugin.core.execution.Fail
              - id: b
                type: io.kestra.plugin.core.log.Log
                message: never
          - id: c
            type: io.kestra.plugin.core.log.Log
            message: never
        """
    )
    assert ex.state.current == State.FAILED
    assert order(ex) == ["seq", "a"]
    assert state_of(ex, "seq") == State.FAILED


def test_warning_propagates_to_parent_and_execution() -> None:
    def outcome(wt):  # type: ignore[no-untyped-def]
        return (State.WARNING if wt.task_run.task_id == "a" else State.SUCCESS, {}, None)

    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: a
              - id: b
                type: io.kestra.plugin.core.log.Log
                message: b
        """,
        outcome=outcome,
    )
    assert states(ex) == {"seq": State.WARNING, "a": State.WARNING, "b": State.SUCCESS}
    assert ex.state.current == State.WARNING


def test_nested_sequentials() -> None:
    _, ex = run(
        """
        tasks:
          - id: s1
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: s2
                type: io.kestra.plugin.core.flow.Sequential
                tasks:
                  - id: a
                    type: io.kestra.plugin.core.log.Log
                    message: a
              - id: b
                type: io.kestra.plugin.core.log.Log
                message: b
        """,
        outcome=fail_ids(),
    )
    assert order(ex) == ["s1", "s2", "a", "b"]
    assert ex.state.current == State.SUCCESS


def test_empty_flowable_children_list_is_rejected_or_succeeds() -> None:
    # Kestra requires tasks on a Sequential; an empty one must never hang the execution
    from common.errors import LannerError

    try:
        _, ex = run(
            """
            tasks:
              - id: seq
                type: io.kestra.plugin.core.flow.Sequential
                tasks: []
            """
        )
    except LannerError:
        return
    assert ex.state.current.terminal
