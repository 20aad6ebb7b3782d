"""Switch and If: children chosen from a rendered value or condition."""

from __future__ import annotations

from common.models.state import State

from .core_util import one, order, run, states

SWITCH = """
inputs:
  - id: v
    type: STRING
tasks:
  - id: sw
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.v }}"
    cases:
      A:
        - id: a1
          type: io.kestra.plugin.core.debug.Return
          format: a
      1:
        - id: one
          type: io.kestra.plugin.core.debug.Return
          format: one
%s
"""
DEFAULTS = """
    defaults:
      - id: d
        type: io.kestra.plugin.core.debug.Return
        format: d
"""


def test_switch_selects_the_matching_case() -> None:
    _, ex = run(SWITCH % DEFAULTS, inputs={"v": "A"})
    assert ex.state.current == State.SUCCESS
    assert order(ex) == ["sw", "a1"]
    assert one(ex, "sw").outputs == {"value": "A", "defaults": False}


def test_switch_numeric_case_key_matches_rendered_string() -> None:
    _, ex = run(SWITCH % DEFAULTS, inputs={"v": "1"})
    assert order(ex) == ["sw", "one"]


def test_switch_defaults_when_no_case_matches() -> None:
    _, ex = run(SWITCH % DEFAULTS, inputs={"v": "zzz"})
    assert ex.state.current == State.SUCCESS
    assert order(ex) == ["sw", "d"]
    assert one(ex, "sw").outputs == {"value": "zzz", "defaults": True}


def test_switch_without_match_nor_defaults_fails() -> None:
    s, ex = run(SWITCH % "", inputs={"v": "zzz"})
    assert ex.state.current == State.FAILED
    assert states(ex) == {"sw": State.FAILED}
    assert any(log.level == "ERROR" and log.task_id == "sw" for log in s.logs)


def test_switch_failing_case_fails_switch() -> None:
    _, ex = run(
        """
        tasks:
          - id: sw
            type: io.kestra.plugin.core.flow.Switch
            value: x
            cases:
              x:
                - id: boom
                  type: io.kestra.plugin.core.execution.Fail
        """
    )
    assert states(ex) == {"sw": State.FAILED, "boom": State.FAILED}
    assert ex.state.current == State.FAILED


IF = """
inputs:
  - id: b
    type: BOOLEAN
tasks:
  - id: cond
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.b }}"
    then:
      - id: t
        type: io.kestra.plugin.core.debug.Return
        format: then
    else:
      - id: e
        type: io.kestra.plugin.core.debug.Return
        format: else
"""


def test_if_then() -> None:
    _, ex = run(IF, inputs={"b": True})
    assert ex.state.current == State.SUCCESS
    assert order(ex) == ["cond", "t"]


def test_if_else() -> None:
    _, ex = run(IF, inputs={"b": False})
    assert ex.state.current == State.SUCCESS
    assert order(ex) == ["cond", "e"]


def test_if_false_without_else_succeeds_with_no_children() -> None:
    _, ex = run(
        """
        tasks:
          - id: cond
            type: io.kestra.plugin.core.flow.If
            condition: "{{ 1 == 2 }}"
            then:
              - id: t
                type: io.kestra.plugin.core.log.Log
                message: t
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: after
        """
    )
    assert ex.state.current == State.SUCCESS
    assert order(ex) == ["cond", "after"]


def test_if_condition_template_error_fails_the_task_run() -> None:
    s, ex = run(
        """
        tasks:
          - id: cond
            type: io.kestra.plugin.core.flow.If
            condition: "{{ outputs.missing.value }}"
            then:
              - id: t
                type: io.kestra.plugin.core.log.Log
                message: t
        """
    )
    assert ex.state.current == State.FAILED
    assert states(ex) == {"cond": State.FAILED}
    assert any(log.level == "ERROR" and log.task_id == "cond" for log in s.logs)


def test_if_in_sequential_with_failing_then() -> None:
    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: cond
                type: io.kestra.plugin.core.flow.If
                condition: "true"
                then:
                  - id: boom
                    type: io.kestra.plugin.core.execution.Fail
              - id: never
                type: io.kestra.plugin.core.log.Log
                message: n
        """
    )
    assert ex.state.current == State.FAILED
    assert states(ex) == {"seq": State.FAILED, "cond": State.FAILED, "boom": State.FAILED}
