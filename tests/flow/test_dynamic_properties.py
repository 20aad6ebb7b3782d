"""Parsing typed properties that Kestra renders at run time: a typed value or a template."""

from __future__ import annotations

import pytest

from common.errors import FlowValidationError
from common.flow import parse_flow

EVERY_DYNAMIC_PROPERTY = """\
id: f
namespace: ns
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    delay: "{{ inputs.delay }}"
    timeout: "{{ vars.timeout }}"
    allowFailure: "{{ vars.ok }}"
    allowWarning: "{{ vars.ok }}"
    runIf: "{{ vars.ok }}"
    retry:
      type: exponential
      interval: "{{ vars.d }}"
      maxInterval: "{{ vars.d }}"
      maxAttempt: "{{ vars.n }}"
      maxDuration: "{{ vars.d }}"
      delayFactor: "{{ vars.f }}"
      warningOnRetry: "{{ vars.ok }}"
  - id: pause2
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: "{{ vars.d }}"
  - id: wait
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{{ true }}"
    failOnMaxReached: "{{ vars.ok }}"
    checkFrequency:
      interval: "{{ vars.d }}"
      maxIterations: "{{ vars.n }}"
      maxDuration: "{{ vars.d }}"
    tasks:
      - {id: w1, type: io.kestra.plugin.core.log.Log, message: x}
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ vars.list }}"
    concurrencyLimit: "{{ vars.n }}"
    tasks:
      - {id: e1, type: io.kestra.plugin.core.log.Log, message: x}
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: "{{ vars.n }}"
    tasks:
      - {id: p1, type: io.kestra.plugin.core.log.Log, message: x}
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    concurrent: "{{ vars.n }}"
    tasks:
      - task: {id: d1, type: io.kestra.plugin.core.log.Log, message: x}
  - id: sleep
    type: io.kestra.plugin.core.flow.Sleep
    duration: "{{ vars.d }}"
  - id: sub
    type: io.kestra.plugin.core.flow.Subflow
    namespace: ns
    flowId: child
    wait: "{{ vars.ok }}"
    transmitFailed: "{{ vars.ok }}"
    inheritLabels: "{{ vars.ok }}"
    inputs: "{{ vars.map }}"
  - id: http
    type: io.kestra.plugin.core.http.Request
    uri: http://example.com
    headers: "{{ vars.map }}"
    allowFailed: "{{ vars.ok }}"
    options:
      timeout: "{{ vars.d }}"
      connectTimeout: "{{ vars.d }}"
      readTimeout: "{{ vars.d }}"
      readIdleTimeout: "{{ vars.d }}"
      followRedirects: "{{ vars.ok }}"
      allowFailed: "{{ vars.ok }}"
      allowedResponseCodes: "{{ vars.list }}"
"""


def test_every_dynamic_property_accepts_a_template() -> None:
    flow = parse_flow(EVERY_DYNAMIC_PROPERTY, check_templates=True)
    assert [t.id for t in flow.tasks][:3] == ["pause", "pause2", "wait"]


def test_static_values_keep_their_type_check() -> None:
    source = """\
id: f
namespace: ns
tasks:
  - id: p
    type: io.kestra.plugin.core.flow.Pause
    delay: abc
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1]
    concurrencyLimit: many
    tasks:
      - {id: e1, type: io.kestra.plugin.core.log.Log, message: x}
"""
    with pytest.raises(FlowValidationError) as info:
        parse_flow(source)
    found = {(p.path, p.message, p.line) for p in info.value.problems}
    assert ("tasks[0].delay", "'abc' is not a duration", 6) in {
        (path, message.split(" (")[0], line) for path, message, line in found
    }, found
    assert ("tasks[1].concurrencyLimit", "'many' is not an integer", 10) in found, found


def test_a_template_in_a_typed_property_has_its_syntax_checked() -> None:
    source = """\
id: f
namespace: ns
tasks:
  - id: p
    type: io.kestra.plugin.core.flow.Pause
    delay: "{{ inputs.delay "
"""
    with pytest.raises(FlowValidationError) as info:
        parse_flow(source, check_templates=True)
    [problem] = info.value.problems
    assert problem.path == "tasks[0].delay" and problem.line == 6
    assert problem.message.startswith("invalid template")


def test_static_values_round_trip_to_the_worker() -> None:
    from common.plugins.registry import registry

    flow = parse_flow(EVERY_DYNAMIC_PROPERTY.replace('"{{ vars.d }}"', "PT1M30S"))
    sleep = next(t for t in flow.tasks if t.id == "sleep")
    dumped = sleep.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert dumped["duration"] == "PT1M30S"
    cls = registry().get(dumped["type"])
    assert cls is not None and cls.model_validate(dumped) == sleep
