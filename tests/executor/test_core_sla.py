"""Flow SLAs: MAX_DURATION (a timer from the start) and EXECUTION_ASSERTION (at the end), each
with the behaviours FAIL, CANCEL and NONE, and the labels a breach adds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.errors import FlowValidationError
from common.flow import parse_flow
from common.models.execution import Execution
from common.models.state import State

from .core_util import flow_yaml, run
from .harness import Sim

WAITS = """
sla:
  - id: too-long
    type: MAX_DURATION
    duration: PT1M
    behavior: {behavior}
    labels:
      sla: miss
      reason: durationExceeded
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
"""

ASSERTS = """
labels:
  sla: unchecked
sla:
  - id: right-output
    type: EXECUTION_ASSERTION
    assert: "{{{{ outputs.make.value == 'expected' }}}}"
    behavior: {behavior}
    labels:
      sla: miss
tasks:
  - id: make
    type: io.kestra.plugin.core.debug.Return
    format: "{value}"
"""


def _labels(ex: Execution) -> dict[str, str]:
    return {lb.key: lb.value for lb in ex.labels if not lb.key.startswith("system.")}


def _breach_logged(sim: Sim, sla_id: str) -> bool:
    return any(e.level == "ERROR" and f"SLA '{sla_id}' violated" in e.message for e in sim.logs)


@pytest.mark.parametrize(
    ("behavior", "final"), [("FAIL", State.FAILED), ("CANCEL", State.CANCELLED)]
)
def test_max_duration_ends_the_execution_as_its_behaviour_says(behavior: str, final: State) -> None:
    sim, ex = run(WAITS.format(behavior=behavior))
    assert ex.state.current == final
    assert ex.state.end_date is not None and ex.state.start_date is not None
    assert ex.state.end_date - ex.state.start_date >= timedelta(minutes=1)
    assert {tr.task_id for tr in ex.task_run_list} == {"wait"}  # `after` never started
    assert _labels(ex) == {"sla": "miss", "reason": "durationExceeded"}
    assert _breach_logged(sim, "too-long")


def test_max_duration_with_none_only_logs_and_labels() -> None:
    sim, ex = run(WAITS.format(behavior="NONE"))
    assert ex.state.current == State.PAUSED  # still waiting: NONE changes nothing else
    assert _labels(ex) == {"sla": "miss", "reason": "durationExceeded"}
    assert _breach_logged(sim, "too-long")


def test_max_duration_not_reached_changes_nothing() -> None:
    paused_10s = WAITS.replace("Pause\n", "Pause\n    delay: PT10S\n")
    sim, ex = run(paused_10s.format(behavior="FAIL"))
    assert ex.state.current == State.SUCCESS
    assert "sla" not in _labels(ex)
    assert not _breach_logged(sim, "too-long")


@pytest.mark.parametrize(
    ("behavior", "final"),
    [("FAIL", State.FAILED), ("CANCEL", State.CANCELLED), ("NONE", State.SUCCESS)],
)
def test_a_false_assertion_at_the_end_breaches(behavior: str, final: State) -> None:
    sim, ex = run(ASSERTS.format(behavior=behavior, value="unexpected"))
    assert ex.state.current == final
    assert _labels(ex) == {"sla": "miss"}  # replaces the flow's label of the same key
    assert _breach_logged(sim, "right-output")


def test_a_true_assertion_changes_nothing() -> None:
    sim, ex = run(ASSERTS.format(behavior="FAIL", value="expected"))
    assert ex.state.current == State.SUCCESS
    assert _labels(ex) == {"sla": "unchecked"}
    assert not _breach_logged(sim, "right-output")


@pytest.mark.parametrize(
    ("sla", "message"),
    [
        ("type: MAX_DURATION", "needs a duration"),
        ("type: MAX_DURATION\n    duration: soon", "not an ISO-8601 duration"),
        ("type: EXECUTION_ASSERTION", "needs an assert expression"),
    ],
)
def test_an_sla_without_what_its_type_needs_is_refused(sla: str, message: str) -> None:
    tasks = "tasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: m\n"
    source = flow_yaml(f"sla:\n  - id: s\n    {sla}\n{tasks}")
    with pytest.raises(FlowValidationError, match=message):
        parse_flow(source)
