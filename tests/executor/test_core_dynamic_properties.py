"""Typed properties Kestra renders at run time accept a template, resolved by the executor.

Each property is given as a template; the flow must parse, the executor must render it with
the task run's variables and then apply the rendered value with its type. A rendered value of
the wrong type fails that task run only, with a message naming the property and the reason.
"""

from __future__ import annotations

from datetime import timedelta

from common.models.state import State

from .core_util import history, one, run, runs, states
from .harness import START, Sim

PAUSE = """
inputs:
  - id: delay
    type: DURATION
tasks:
  - id: p
    type: io.kestra.plugin.core.flow.Pause
    delay: "{{ inputs.delay }}"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
"""


def _errors(sim: Sim, task_id: str) -> list[str]:
    return [log.message for log in sim.logs if log.task_id == task_id and log.level == "ERROR"]


def test_pause_delay_template_resumes_after_the_rendered_duration() -> None:
    _, ex = run(PAUSE, inputs={"delay": "PT5M"})
    assert ex.state.current == State.SUCCESS
    assert State.PAUSED in history(one(ex, "p"))
    assert one(ex, "after").state.start_date == START + timedelta(minutes=5)


def test_pause_duration_and_timeout_templates() -> None:
    _, ex = run(
        """
        variables:
          wait: PT10M
          limit: PT1M
        tasks:
          - id: p
            type: io.kestra.plugin.core.flow.Pause
            pauseDuration: "{{ vars.wait }}"
            timeout: "{{ vars.limit }}"
        """
    )
    # the timeout comes first and fails the pause
    assert states(ex) == {"p": State.FAILED}
    assert one(ex, "p").state.end_date == START + timedelta(minutes=1)


def test_invalid_rendered_delay_fails_only_that_task_run() -> None:
    sim, ex = run(
        """
        inputs:
          - id: delay
            type: STRING
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: p
                type: io.kestra.plugin.core.flow.Pause
                delay: "{{ inputs.delay }}"
                allowFailure: true
              - id: sibling
                type: io.kestra.plugin.core.log.Log
                message: still runs
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: after
        """,
        inputs={"delay": "abc"},
    )
    assert one(ex, "p").state.current == State.WARNING
    assert one(ex, "sibling").state.current == State.SUCCESS
    assert one(ex, "after").state.current == State.SUCCESS
    assert ex.state.current == State.WARNING
    errors = _errors(sim, "p")
    assert any("delay: 'abc' is not a duration" in m for m in errors), errors


def test_foreach_values_and_concurrency_limit_templates() -> None:
    _, ex = run(
        """
        inputs:
          - id: items
            type: JSON
          - id: limit
            type: INT
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: "{{ inputs.items }}"
            concurrencyLimit: "{{ inputs.limit }}"
            tasks:
              - id: t
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}"
        """,
        inputs={"items": '["a", "b", "c"]', "limit": 0},
    )
    assert ex.state.current == State.SUCCESS
    assert sorted(tr.value for tr in runs(ex, "t")) == ["a", "b", "c"]  # type: ignore[type-var]
    # concurrencyLimit 0: every iteration starts at once
    assert {tr.state.start_date for tr in runs(ex, "t")} == {START}


def test_invalid_concurrency_limit_names_the_property() -> None:
    sim, ex = run(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: [1, 2]
            concurrencyLimit: "{{ 'many' }}"
            tasks:
              - id: t
                type: io.kestra.plugin.core.log.Log
                message: x
        """
    )
    assert one(ex, "each").state.current == State.FAILED
    assert ex.state.current == State.FAILED
    errors = _errors(sim, "each")
    assert any("concurrencyLimit: 'many' is not an integer" in m for m in errors), errors


def test_parallel_concurrent_template() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(
        """
id: f
namespace: ns
variables:
  n: 2
tasks:
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: "{{ vars.n }}"
    tasks:
      - {id: a, type: io.kestra.plugin.core.log.Log, message: a}
      - {id: b, type: io.kestra.plugin.core.log.Log, message: b}
      - {id: c, type: io.kestra.plugin.core.log.Log, message: c}
"""
    )
    eid = sim.create("ns", "f")
    sim.run()
    assert sorted(tr.task_id for tr in sim.execution(eid).task_run_list) == ["a", "b", "par"]
    sim.hold_workers = False
    sim.run()
    assert sim.execution(eid).state.current == State.SUCCESS


def test_waitfor_check_frequency_templates() -> None:
    _, ex = run(
        """
        variables:
          every: PT30S
          times: 3
        tasks:
          - id: w
            type: io.kestra.plugin.core.flow.WaitFor
            condition: "{{ false }}"
            failOnMaxReached: "{{ true }}"
            checkFrequency:
              interval: "{{ vars.every }}"
              maxIterations: "{{ vars.times }}"
              maxDuration: "{{ 'PT1H' }}"
            tasks:
              - id: t
                type: io.kestra.plugin.core.log.Log
                message: x
        """
    )
    assert one(ex, "w").state.current == State.FAILED
    starts = sorted(tr.state.start_date - START for tr in runs(ex, "t"))  # type: ignore[operator]
    assert starts == [timedelta(0), timedelta(seconds=30), timedelta(seconds=60)]


def test_retry_templates() -> None:
    _, ex = run(
        """
        variables:
          every: PT10S
          attempts: 3
        tasks:
          - id: t
            type: io.kestra.plugin.core.execution.Fail
            retry:
              type: constant
              interval: "{{ vars.every }}"
              maxAttempt: "{{ vars.attempts }}"
              maxDuration: "{{ 'PT1H' }}"
        """
    )
    tr = one(ex, "t")
    assert [a.state.start_date - START for a in tr.attempts] == [  # type: ignore[operator]
        timedelta(0),
        timedelta(seconds=10),
        timedelta(seconds=20),
    ]
    assert ex.state.current == State.FAILED


def test_allow_failure_and_run_if_templates() -> None:
    _, ex = run(
        """
        inputs:
          - id: tolerate
            type: BOOLEAN
        tasks:
          - id: f
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: "{{ inputs.tolerate }}"
          - id: skipped
            type: io.kestra.plugin.core.log.Log
            message: x
            runIf: "{{ not inputs.tolerate }}"
        """,
        inputs={"tolerate": True},
    )
    assert states(ex) == {"f": State.WARNING, "skipped": State.SKIPPED}
    assert ex.state.current == State.WARNING


def test_subflow_wait_and_transmit_failed_templates() -> None:
    sim = Sim()
    sim.deploy(
        """
id: child
namespace: ns
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
"""
    )
    sim.deploy(
        """
id: f
namespace: ns
variables:
  wait: true
  transmit: false
tasks:
  - id: sub
    type: io.kestra.plugin.core.flow.Subflow
    namespace: ns
    flowId: child
    wait: "{{ vars.wait }}"
    transmitFailed: "{{ vars.transmit }}"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: after
"""
    )
    eid = sim.create("ns", "f")
    sim.run()
    ex = sim.execution(eid)
    # it waited for the failed child, and did not transmit the failure
    assert states(ex) == {"sub": State.SUCCESS, "after": State.SUCCESS}
    assert one(ex, "sub").outputs["state"] == "FAILED"  # type: ignore[index]


def test_sleep_duration_template_runs_on_the_worker() -> None:
    _, ex = run(
        """
        inputs:
          - id: nap
            type: DURATION
        tasks:
          - id: s
            type: io.kestra.plugin.core.flow.Sleep
            duration: "{{ inputs.nap }}"
        """,
        inputs={"nap": "PT0.01S"},
    )
    assert ex.state.current == State.SUCCESS


def test_invalid_rendered_sleep_duration_fails_the_task_run() -> None:
    sim, ex = run(
        """
        tasks:
          - id: s
            type: io.kestra.plugin.core.flow.Sleep
            duration: "{{ 'soon' }}"
        """
    )
    assert states(ex) == {"s": State.FAILED}
    errors = _errors(sim, "s")
    assert any("duration: 'soon' is not a duration" in m for m in errors), errors
