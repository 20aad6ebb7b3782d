"""Flow triggers through the harness (the same ``executor.flow_triggers`` as the shells):
non-terminal states, preconditions' ``where`` and ``timeWindow``, MultipleCondition windows."""

from __future__ import annotations

from datetime import timedelta

from common.models.state import State

from .core_util import FAIL, RETURN, flow_yaml
from .harness import Sim

UPSTREAM = f"""
tasks:
  - id: ret
    type: {RETURN}
    format: done
"""
FAILING = f"""
tasks:
  - id: boom
    type: {FAIL}
"""
PAUSING = f"""
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT1M
  - id: ret
    type: {RETURN}
    format: done
"""


def _listener(trigger: str) -> str:
    return flow_yaml(
        f"""
        tasks:
          - id: ret
            type: {RETURN}
            format: listened
        triggers:
          - id: listen
            type: io.kestra.plugin.core.trigger.Flow
        """
        + trigger,
        flow_id="listener",
        namespace="ns",
    )


def _triggered(sim: Sim) -> list[str]:
    return [
        str(s.execution.trigger.variables["state"])
        for s in sim.states.values()
        if s.execution.flow_id == "listener" and s.execution.trigger is not None
    ]


def _start(sim: Sim, flow_id: str, namespace: str = "ns") -> str:
    execution_id = sim.create(namespace, flow_id)
    sim.run()
    return execution_id


def test_non_terminal_states_fire_on_each_matching_change() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(PAUSING, flow_id="pausing"))
    sim.deploy(
        _listener(
            """
            states: [PAUSED, SUCCESS]
            preconditions:
              id: pre
              flows:
                - namespace: ns
                  flowId: pausing
        """
        )
    )
    execution_id = _start(sim, "pausing")
    assert sim.execution(execution_id).state.current == State.SUCCESS
    assert sorted(_triggered(sim)) == ["PAUSED", "SUCCESS"]


def test_the_default_states_are_the_terminal_ones() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(PAUSING, flow_id="pausing"))
    sim.deploy(
        _listener(
            """
            preconditions:
              id: pre
              flows:
                - namespace: ns
                  flowId: pausing
        """
        )
    )
    _start(sim, "pausing")
    assert _triggered(sim) == ["SUCCESS"]


def test_where_filters_on_namespace_and_state() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(FAILING, flow_id="failing", namespace="company.team"))
    sim.deploy(flow_yaml(UPSTREAM, flow_id="ok", namespace="company.team"))
    sim.deploy(flow_yaml(FAILING, flow_id="failing", namespace="other"))
    sim.deploy(
        _listener(
            """
            preconditions:
              id: alert
              where:
                - id: company-failures
                  filters:
                    - field: NAMESPACE
                      type: STARTS_WITH
                      value: company
                    - field: STATE
                      type: IN
                      values: [FAILED, WARNING]
        """
        )
    )
    _start(sim, "ok", "company.team")
    _start(sim, "failing", "other")
    assert _triggered(sim) == []
    _start(sim, "failing", "company.team")
    assert _triggered(sim) == ["FAILED"]


def _two_upstreams(sim: Sim, window: str) -> None:
    sim.deploy(flow_yaml(UPSTREAM, flow_id="a"))
    sim.deploy(flow_yaml(UPSTREAM, flow_id="b"))
    sim.deploy(
        _listener(
            f"""
            preconditions:
              id: both
              timeWindow:
{window}
              flows:
                - namespace: ns
                  flowId: a
                - namespace: ns
                  flowId: b
        """
        )
    )


def test_a_sliding_window_forgets_old_matches() -> None:
    sim = Sim()
    _two_upstreams(sim, "                type: SLIDING_WINDOW\n                window: PT1H")
    _start(sim, "a")
    sim.advance(timedelta(hours=2))
    _start(sim, "b")
    assert _triggered(sim) == []  # a matched two hours ago: out of the window
    sim.advance(timedelta(minutes=30))
    _start(sim, "a")
    assert _triggered(sim) == ["SUCCESS"]


def test_a_duration_window_starts_again_at_its_boundary() -> None:
    sim = Sim()  # starts at 10:00
    _two_upstreams(sim, "                type: DURATION_WINDOW\n                window: PT1H")
    sim.advance(timedelta(minutes=50))
    _start(sim, "a")  # 10:50, window 10:00-11:00
    sim.advance(timedelta(minutes=20))
    _start(sim, "b")  # 11:10, window 11:00-12:00
    assert _triggered(sim) == []
    sim.advance(timedelta(minutes=10))
    _start(sim, "a")
    assert _triggered(sim) == ["SUCCESS"]


def test_a_daily_deadline_ignores_executions_after_it() -> None:
    sim = Sim()  # starts at 10:00
    _two_upstreams(
        sim, "                type: DAILY_TIME_DEADLINE\n                deadline: '09:00:00'"
    )
    _start(sim, "a")
    _start(sim, "b")
    assert _triggered(sim) == []
    sim.advance(timedelta(hours=22))  # 08:00 the next day
    _start(sim, "a")
    _start(sim, "b")
    assert _triggered(sim) == ["SUCCESS"]


def test_a_daily_time_window_counts_only_inside_it() -> None:
    sim = Sim()  # starts at 10:00
    window = "                type: DAILY_TIME_WINDOW\n                startTime: '11:00:00'\n"
    _two_upstreams(sim, window + "                endTime: '12:00:00'")
    _start(sim, "a")  # 10:00: outside
    sim.advance(timedelta(hours=1, minutes=10))
    _start(sim, "b")
    assert _triggered(sim) == []
    _start(sim, "a")
    assert _triggered(sim) == ["SUCCESS"]


def test_multiple_condition_time_window() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(UPSTREAM, flow_id="a"))
    sim.deploy(flow_yaml(UPSTREAM, flow_id="b"))
    sim.deploy(
        _listener(
            """
            conditions:
              - id: multiple
                type: io.kestra.plugin.core.condition.MultipleCondition
                timeWindow:
                  type: SLIDING_WINDOW
                  window: PT1H
                conditions:
                  flow-a:
                    type: io.kestra.plugin.core.condition.ExecutionFlow
                    namespace: ns
                    flowId: a
                  flow-b:
                    type: io.kestra.plugin.core.condition.ExecutionFlow
                    namespace: ns
                    flowId: b
        """
        )
    )
    _start(sim, "a")
    sim.advance(timedelta(hours=2))
    _start(sim, "b")
    assert _triggered(sim) == []
    _start(sim, "a")
    assert _triggered(sim) == ["SUCCESS"]


def test_templates_of_a_flow_trigger_depend_only_on_the_evaluation_arguments() -> None:
    """Conditions and inputs see the step's ``now()`` and seeded ``uuid()``/``randomInt()``,
    so evaluating the same state change twice creates the same execution, byte for byte."""
    from common.flow import parse_flow
    from executor import flow_triggers

    sim = Sim()
    sim.deploy(flow_yaml(UPSTREAM, flow_id="upstream"))
    listener = parse_flow(
        _listener(
            """
            inputs:
              id: "{{ uuid() }}"
              at: "{{ now() }}"
              n: "{{ randomInt(0, 1000000000) }}"
            conditions:
              - type: io.kestra.plugin.core.condition.Expression
                expression: "{{ now() | date('yyyy') == '2024' or randomInt(0, 2) < 3 }}"
        """
        )
    )
    ended = sim.execution(_start(sim, "upstream"))
    made = [
        flow_triggers.evaluate([listener], ended, State.RUNNING, sim.now, flow_triggers.Windows())
        for _ in range(2)
    ]
    first, second = (created for created, _ in made)
    assert len(first) == 1
    assert first[0].model_dump_json() == second[0].model_dump_json()
    assert first[0].inputs is not None
    assert first[0].inputs["at"] == "2024-01-01T10:00:00.000Z"  # the step's now, not the clock
    assert sim.now.isoformat() == "2024-01-01T10:00:00+00:00"
