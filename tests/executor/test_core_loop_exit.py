"""LoopUntil and Exit in the executor core, with the outcomes Kestra's tests assert.

- LoopUntil: ``LoopUntilCaseTest`` (kestra-io/kestra core/src/test/java/io/kestra/plugin/core/
  flow/LoopUntilCaseTest.java) on the flows ``waitfor.yaml``, ``waitfor-max-iterations.yaml``,
  ``waitfor-no-success.yaml``, ``waitfor-multiple-tasks.yaml`` (core/src/test/resources/flows/
  valids/): ``iterationCount`` 1 when the condition holds after the first iteration, 4 with
  ``maxIterations: 3`` and ``failOnMaxReached`` (FAILED), 3 with two tasks and the last
  ``count`` output "4"; the plugin page's example (kestra.io/plugins/core/flow/
  io.kestra.plugin.core.flow.LoopUntil) loops until ``Return {{ outputs.loop.iterationCount }}``
  gives '4'.
- Exit: ``ExitTest`` (core/src/test/java/io/kestra/plugin/core/execution/ExitTest.java) on
  ``exit.yaml`` (WARNING: two task runs, the If WARNING, ``end`` never runs) and
  ``exit-killed.yaml`` (KILLED: both task runs KILLED).
"""

from __future__ import annotations

from common.models.state import State

from .core_util import run, runs

LOOP = "io.kestra.plugin.core.flow.LoopUntil"


def _loop(condition: str, frequency: str = "", fail: bool = False, echo: bool = False) -> str:
    echo_task = (
        """
              - id: echo
                type: io.kestra.plugin.core.log.Log
                message: looping"""
        if echo
        else ""
    )
    return f"""
        tasks:
          - id: waitfor
            type: {LOOP}
            condition: "{condition}"
            failOnMaxReached: {str(fail).lower()}
            checkFrequency:
              interval: PT0.2S{frequency}
            tasks:{echo_task}
              - id: output_values
                type: io.kestra.plugin.core.output.OutputValues
                values:
                  count: "{{{{ outputs.waitfor.iterationCount + 1 }}}}"
        """


def test_loop_until_condition_true_after_the_first_iteration() -> None:
    _, ex = run(_loop("{{ outputs.output_values.values.count != '4' }}"))
    assert ex.state.current == State.SUCCESS
    assert ex.task_run_list[0].outputs == {"iterationCount": 1}


def test_loop_until_max_iterations_fails() -> None:
    body = _loop(
        "{{ outputs.output_values.values.count == '10' }}",
        "\n              maxIterations: 3",
        fail=True,
    )
    _, ex = run(body)
    assert ex.state.current == State.FAILED
    assert ex.task_run_list[0].outputs == {"iterationCount": 4}
    assert len(runs(ex, "output_values")) == 3


def test_loop_until_no_success_ends_on_its_condition() -> None:
    body = _loop(
        "{{ outputs.output_values.values.count == '6' }}", "\n              maxIterations: 5"
    )
    _, ex = run(body)
    assert ex.state.current == State.SUCCESS
    assert ex.task_run_list[0].outputs == {"iterationCount": 5}


def test_loop_until_multiple_tasks() -> None:
    _, ex = run(_loop("{{ outputs.output_values.values.count == '4' }}", echo=True))
    assert ex.state.current == State.SUCCESS
    assert ex.task_run_list[0].outputs == {"iterationCount": 3}
    assert ex.task_run_list[-1].outputs == {"values": {"count": "4"}}


def _exit(state: str) -> str:
    return f"""
        inputs:
          - id: state
            type: SELECT
            values: [CONTINUE, END]
            defaults: END
        tasks:
          - id: if
            type: io.kestra.plugin.core.flow.If
            condition: "{{{{ inputs.state == 'CONTINUE' }}}}"
            then:
              - id: hello
                type: io.kestra.plugin.core.log.Log
                message: I'm continuing
            else:
              - id: exit
                type: io.kestra.plugin.core.execution.Exit
                state: {state}
          - id: end
            type: io.kestra.plugin.core.log.Log
            message: I'm ending
        """


def test_exit_warning_ends_the_execution() -> None:
    _, ex = run(_exit("WARNING"))
    assert ex.state.current == State.WARNING
    assert [(tr.task_id, tr.state.current) for tr in ex.task_run_list] == [
        ("if", State.WARNING),
        ("exit", State.WARNING),
    ]


def test_exit_killed_kills_the_execution() -> None:
    _, ex = run(_exit("KILLED"))
    assert ex.state.current == State.KILLED
    assert [(tr.task_id, tr.state.current) for tr in ex.task_run_list] == [
        ("if", State.KILLED),
        ("exit", State.KILLED),
    ]


def test_exit_continue_runs_everything() -> None:
    _, ex = run(_exit("FAILED"), inputs={"state": "CONTINUE"})
    assert ex.state.current == State.SUCCESS
    assert [tr.task_id for tr in ex.task_run_list] == ["if", "hello", "end"]
