"""AllowFailure, allowFailure/allowWarning, runIf, disabled, errors and finally."""

from __future__ import annotations

from common.models.state import State

from .core_util import history, one, order, run, runs, state_of, states


def test_allow_failure_flowable_turns_failure_into_warning() -> None:
    _, ex = run(
        """
        tasks:
          - id: af
            type: io.kestra.plugin.core.flow.AllowFailure
            tasks:
              - id: boom
                type: io.kestra.plugin.core.execution.Fail
              - id: never
                type: io.kestra.plugin.core.log.Log
                message: n
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: after
        """
    )
    assert states(ex) == {"af": State.WARNING, "boom": State.FAILED, "after": State.SUCCESS}
    assert ex.state.current == State.WARNING


def test_task_allow_failure() -> None:
    _, ex = run(
        """
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: after
        """
    )
    assert states(ex) == {"boom": State.WARNING, "after": State.SUCCESS}
    assert State.FAILED in history(one(ex, "boom"))
    assert ex.state.current == State.WARNING


def test_task_allow_warning() -> None:
    def outcome(wt):  # type: ignore[no-untyped-def]
        return (State.WARNING, {}, None)

    _, ex = run(
        """
        tasks:
          - id: w
            type: io.kestra.plugin.core.log.Log
            message: w
            allowWarning: true
        """,
        outcome=outcome,
    )
    assert states(ex) == {"w": State.SUCCESS}
    assert ex.state.current == State.SUCCESS


def test_allow_failure_and_allow_warning_gives_success() -> None:
    _, ex = run(
        """
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
            allowWarning: true
        """
    )
    assert states(ex) == {"boom": State.SUCCESS}
    assert ex.state.current == State.SUCCESS


def test_allow_failure_on_a_flowable() -> None:
    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            allowFailure: true
            tasks:
              - id: boom
                type: io.kestra.plugin.core.execution.Fail
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: after
        """
    )
    assert states(ex) == {"seq": State.WARNING, "boom": State.FAILED, "after": State.SUCCESS}
    assert ex.state.current == State.WARNING


RUN_IF = """
inputs:
  - id: go
    type: STRING
tasks:
  - id: maybe
    type: io.kestra.plugin.core.log.Log
    message: m
    runIf: "{{ inputs.go }}"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
"""


def test_run_if_true_runs() -> None:
    _, ex = run(RUN_IF, inputs={"go": "true"})
    assert states(ex) == {"maybe": State.SUCCESS, "after": State.SUCCESS}


def test_run_if_false_skips() -> None:
    _, ex = run(RUN_IF, inputs={"go": "false"})
    assert states(ex) == {"maybe": State.SKIPPED, "after": State.SUCCESS}
    assert one(ex, "maybe").attempts == []
    assert ex.state.current == State.SUCCESS


def test_run_if_render_error_fails() -> None:
    s, ex = run(RUN_IF.replace("{{ inputs.go }}", "{{ outputs.nope.value }}"), inputs={"go": "x"})
    assert states(ex) == {"maybe": State.FAILED}
    assert ex.state.current == State.FAILED
    assert any(log.level == "ERROR" and log.task_id == "maybe" for log in s.logs)


def test_run_if_on_flowable_false_skips_children() -> None:
    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            runIf: "false"
            tasks:
              - id: a
                type: io.kestra.plugin.core.log.Log
                message: a
        """
    )
    assert states(ex) == {"seq": State.SKIPPED}
    assert ex.state.current == State.SUCCESS


def test_disabled_task_has_no_task_run() -> None:
    _, ex = run(
        """
        tasks:
          - id: disabled1
            type: io.kestra.plugin.core.execution.Fail
            disabled: true
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: disabled2
                type: io.kestra.plugin.core.execution.Fail
                disabled: true
              - id: enabled
                type: io.kestra.plugin.core.log.Log
                message: enabled
        """
    )
    assert order(ex) == ["seq", "enabled"]
    assert ex.state.current == State.SUCCESS


def test_disabled_flowable_has_no_task_run() -> None:
    _, ex = run(
        """
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            disabled: true
            tasks:
              - id: a
                type: io.kestra.plugin.core.execution.Fail
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: b
        """
    )
    assert order(ex) == ["b"]
    assert ex.state.current == State.SUCCESS


def test_flow_errors_run_after_a_failure_and_execution_still_fails() -> None:
    _, ex = run(
        """
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: n
        errors:
          - id: e1
            type: io.kestra.plugin.core.debug.Return
            format: "{{ errorLogs()[0].taskId }}"
          - id: e2
            type: io.kestra.plugin.core.log.Log
            message: e2
        """
    )
    assert order(ex) == ["boom", "e1", "e2"]
    assert one(ex, "e1").outputs == {"value": "boom"}
    assert ex.state.current == State.FAILED


def test_flow_errors_not_run_on_success() -> None:
    _, ex = run(
        """
        tasks:
          - id: ok
            type: io.kestra.plugin.core.log.Log
            message: ok
        errors:
          - id: e1
            type: io.kestra.plugin.core.log.Log
            message: e1
        """
    )
    assert order(ex) == ["ok"]
    assert ex.state.current == State.SUCCESS


def test_failing_errors_branch_goes_on_and_execution_stays_failed() -> None:
    # as Kestra: inside the errors branch, a failed task does not stop the next one
    _, ex = run(
        """
        tasks:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
        errors:
          - id: e1
            type: io.kestra.plugin.core.execution.Fail
          - id: e2
            type: io.kestra.plugin.core.log.Log
            message: e2
        """
    )
    assert order(ex) == ["boom", "e1", "e2"]
    assert ex.state.current == State.FAILED


def test_task_level_errors_on_a_flowable() -> None:
    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: boom
                type: io.kestra.plugin.core.execution.Fail
            errors:
              - id: local
                type: io.kestra.plugin.core.log.Log
                message: local
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: never
        errors:
          - id: global
            type: io.kestra.plugin.core.log.Log
            message: global
        """
    )
    assert order(ex) == ["seq", "boom", "local", "global"]
    assert state_of(ex, "seq") == State.FAILED
    assert state_of(ex, "local") == State.SUCCESS
    seq = one(ex, "seq")
    assert one(ex, "local").parent_task_run_id == seq.id
    assert ex.state.current == State.FAILED


def test_errors_in_parallel_run_after_failure() -> None:
    _, ex = run(
        """
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: boom
                type: io.kestra.plugin.core.execution.Fail
              - id: ok
                type: io.kestra.plugin.core.log.Log
                message: ok
            errors:
              - id: local
                type: io.kestra.plugin.core.log.Log
                message: local
        """
    )
    st = states(ex)
    assert st["local"] == State.SUCCESS
    assert st["ok"] == State.SUCCESS
    assert st["par"] == State.FAILED
    assert ex.state.current == State.FAILED


FINALLY = """
tasks:
  - id: main
    type: {main}
    {extra}
finally:
  - id: fin1
    type: io.kestra.plugin.core.log.Log
    message: fin1
  - id: fin2
    type: io.kestra.plugin.core.log.Log
    message: fin2
"""


def test_finally_after_success() -> None:
    _, ex = run(FINALLY.format(main="io.kestra.plugin.core.log.Log", extra="message: m"))
    assert order(ex) == ["main", "fin1", "fin2"]
    assert ex.state.current == State.SUCCESS


def test_finally_after_failure() -> None:
    _, ex = run(FINALLY.format(main="io.kestra.plugin.core.execution.Fail", extra=""))
    assert order(ex) == ["main", "fin1", "fin2"]
    assert ex.state.current == State.FAILED


def test_finally_after_errors() -> None:
    _, ex = run(
        FINALLY.format(main="io.kestra.plugin.core.execution.Fail", extra="")
        + """
errors:
  - id: err
    type: io.kestra.plugin.core.log.Log
    message: err
"""
    )
    assert order(ex) == ["main", "err", "fin1", "fin2"]
    assert ex.state.current == State.FAILED


def test_failing_finally_fails_execution() -> None:
    _, ex = run(
        """
        tasks:
          - id: ok
            type: io.kestra.plugin.core.log.Log
            message: ok
        finally:
          - id: fin
            type: io.kestra.plugin.core.execution.Fail
        """
    )
    assert ex.state.current == State.FAILED


def test_finally_on_a_flowable() -> None:
    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: boom
                type: io.kestra.plugin.core.execution.Fail
            finally:
              - id: fin
                type: io.kestra.plugin.core.log.Log
                message: fin
        """
    )
    assert order(ex) == ["seq", "boom", "fin"]
    assert runs(ex, "fin")[0].parent_task_run_id == one(ex, "seq").id
    assert ex.state.current == State.FAILED
