"""Same arguments, same result, byte for byte: the executor core is a pure function.

Generated flows place every template function, filter and test the core can reach in the
properties the core renders itself (If condition, Switch value, ForEach values, WaitFor condition,
runIf, Labels, Subflow inputs, labels and outputs, flow outputs, a child flow's outputs). The flow
runs in the harness; every input is applied twice, to deep copies of the same state with the
same ``now`` and config, and the two results dumped to JSON must be equal: the new state and
every emitted message. ``fail`` is checked the same way. Between the two calls the environment
changes (a ``SECRET_`` variable), which the core must not read either.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from common.models.messages import ExecutorInput, NewExecution, WorkerTask
from common.models.state import State
from common.templating._filters import FILTERS, TESTS
from common.templating._functions import GLOBALS
from executor import concurrency
from executor.core import CoreConfig, StepResult, fail, step
from executor.state import ExecutorState

from .core_util import one, run, runs
from .harness import START, Sim

RETURN = "io.kestra.plugin.core.debug.Return"
FLOW = "io.kestra.plugin.core.flow"
SECRET_NAME = "LANNER_DETERMINISM"
SECRET_ENV = "SECRET_" + SECRET_NAME

# Functions a worker adds for the tasks it runs; the core must answer them without I/O too.
WORKER_FUNCTIONS = ("read", "fileExists", "fileSize")

# name -> expressions using it; random and clock values flow through the filters on purpose
EXPRESSIONS: dict[str, list[str]] = {
    # functions
    "now": [
        "now()",
        "now(timeZone='Europe/Paris')",
        "now() | timestampNano",
        "now() | date('yyyy-MM-dd HH:mm:ss.SSSSSS')",
    ],
    "uuid": ["uuid()", "{'a': uuid()} | toJson"],
    "randomInt": ["randomInt(0, 1000000000)", "randomInt(-5, 5) + randomInt(0, 1000000000)"],
    "range": ["range(1, randomInt(1, 4)) | join(',')", "range(randomInt(0, 3), 5) | length"],
    "fromJson": ["fromJson('{\"a\": ' ~ randomInt(0, 99) ~ '}').a"],
    "json": ["json('[' ~ randomInt(0, 99) ~ ', 2]') | first"],
    "fromYaml": ["fromYaml('a: ' ~ uuid()).a"],
    "yaml": ["yaml('[1, ' ~ randomInt(0, 9) ~ ']') | last"],
    "render": ["render('{{ uuid() }}')", "render('{{ \"{{ now() | timestampNano }}\" }}')"],
    "renderOnce": ["renderOnce('{{ now() | timestampNano }}-{{ randomInt(0, 1000000) }}')"],
    "currentEachOutput": ["currentEachOutput(outputs) | length", "currentEachOutput({}) | length"],
    "isNull": ["isNull(randomInt(0, 2))", "isNull(outputs.nothing)"],
    "max": ["max(randomInt(0, 100), 50)"],
    "min": ["min([randomInt(0, 100), 50])"],
    "errorLogs": ["errorLogs() | toJson", "errorLogs() | length"],
    "secret": [f"secret('{SECRET_NAME}')"],
    "read": ["read('lanner:///ns/f/file.txt')"],
    "fileExists": ["fileExists('lanner:///ns/f/file.txt')"],
    "fileSize": ["fileSize('lanner:///ns/f/file.txt')"],
    "fileURI": ["fileURI('data/' ~ uuid() ~ '.csv')"],
    # operators and variables that come from the step's arguments
    "??": ["missing.key ?? uuid()", "outputs.nothing ?? randomInt(0, 1000000)"],
    "envs": ["envs.home ?? 'none'", "envs.home | upper"],
    "globals": ["globals.region", "globals.nested.key ?? uuid()"],
    "variables": [
        "execution.startDate | date('yyyy-MM-dd HH:mm')",
        "(taskrun.startDate ?? now()) | timestampMicro",
        "flow | toJson",
    ],
    "progress": ["labels | toJson", "tasks | toJson", "outputs | toJson"],
    # filters
    "toJson": ["{'at': now()} | toJson"],
    "jq": ["{'a': randomInt(0, 9)} | jq('.a') | first"],
    "toYaml": ["{'a': now(), 'b': uuid()} | toYaml"],
    "keys": ["{'b': uuid()} | keys | first"],
    "values": ["{'b': uuid()} | values | first"],
    "number": ["(randomInt(0, 99) ~ '') | number", "'3.5' | number('DOUBLE')"],
    "className": ["uuid() | className", "now() | className"],
    "date": ["now() | date('iso')", "now() | date('EEEE d MMMM yyyy', timeZone='Asia/Tokyo')"],
    "dateAdd": ["now() | dateAdd(-1, 'DAYS') | timestampMicro", "now() | dateAdd(1, 'MONTHS')"],
    "timestamp": ["now() | timestamp"],
    "timestampMilli": ["now() | timestampMilli"],
    "timestampMicro": ["now() | timestampMicro"],
    "timestampNano": ["now() | timestampNano"],
    "slugify": ["(uuid() ~ ' Hé') | slugify"],
    "substringBefore": ["uuid() | substringBefore('-')"],
    "substringAfter": ["uuid() | substringAfter('-')"],
    "substringBeforeLast": ["uuid() | substringBeforeLast('-')"],
    "substringAfterLast": ["uuid() | substringAfterLast('-')"],
    "startsWith": ["uuid() | startsWith('a')"],
    "endsWith": ["uuid() | endsWith('a')"],
    "indent": ["uuid() | indent(2)"],
    "nindent": ["uuid() | nindent(2)"],
    "escapeChar": ["(uuid() ~ \"'\") | escapeChar('single')"],
    "urlencode": ["(uuid() ~ ' &') | urlencode"],
    "urldecode": ["(uuid() ~ '%20') | urldecode"],
    "md5": ["uuid() | md5"],
    "sha1": ["uuid() | sha1"],
    "sha256": ["now() | timestampNano | sha256"],
    "sha512": ["uuid() | sha512"],
    "base64encode": ["uuid() | base64encode"],
    "base64decode": ["uuid() | base64encode | base64decode"],
    "upper": ["uuid() | upper"],
    "lower": ["uuid() | lower"],
    "title": ["uuid() | title"],
    "capitalize": ["uuid() | capitalize"],
    "trim": ["(' ' ~ uuid() ~ ' ') | trim"],
    "abbreviate": ["uuid() | abbreviate(10)"],
    "replace": ["uuid() | replace({'-': '_'})"],
    "split": ["uuid() | split('-') | last"],
    "escape": ["(uuid() ~ '<') | escape"],
    "e": ["(uuid() ~ '&') | e"],
    "length": ["[randomInt(0, 9)] | length", "uuid() | length"],
    "first": ["[uuid(), 1] | first"],
    "last": ["[1, uuid()] | last"],
    "join": ["[uuid(), uuid()] | join(',')"],
    "default": ["null | default(uuid())", "outputs.nothing | default(randomInt(0, 99))"],
    "abs": ["randomInt(-99, 0) | abs"],
    "sort": ["[uuid(), uuid()] | sort | first"],
    "rsort": ["[uuid(), uuid()] | rsort | first"],
    "reverse": ["[uuid(), 1] | reverse | first"],
    "slice": ["uuid() | slice(0, 8)"],
    "chunk": ["[uuid(), uuid(), uuid()] | chunk(2) | first | first"],
    "flatten": ["[[uuid()], [randomInt(0, 9)]] | flatten | first"],
    "distinct": ["[randomInt(0, 2), randomInt(0, 2)] | distinct | length"],
    "merge": ["{'a': 1} | merge({'b': uuid()}) | toJson"],
    "string": ["randomInt(0, 99) | string"],
    "raw": ["uuid() | raw"],
    # tests
    "defined": ["uuid() is defined"],
    "null": ["outputs.nothing is null"],
    "empty": ["(randomInt(0, 2) == 0 ? '' : 'x') is empty"],
    "even": ["randomInt(0, 9) is even"],
    "odd": ["randomInt(0, 9) is odd"],
    "iterable": ["[uuid()] is iterable"],
    "map": ["{'a': uuid()} is map"],
}
# the same names serve a function and a filter/test
EXPRESSIONS["fromJson"] += ["('{\"a\": \"' ~ uuid() ~ '\"}') | fromJson | toJson"]
EXPRESSIONS["json"] += ["('[' ~ randomInt(0, 9) ~ ']') is json", "{'a': now()} | json"]
EXPRESSIONS["yaml"] += ["{'a': uuid()} | yaml"]

# placed last in a template: they fail the render (errorLogs() in a Subflow's outputs,
# currentEachOutput() under a ForEach can), and what follows them would not run
_FAILING = {"secret", *WORKER_FUNCTIONS, "errorLogs", "currentEachOutput"}
# values that change as the execution runs: kept out of ForEach values, which are rendered again
# at each input (each new value would add children, whose results change the values again...)
_PROGRESS = {"errorLogs", "currentEachOutput", "progress"}


def test_the_expressions_cover_every_function_filter_and_test() -> None:
    reachable = {name for name in GLOBALS if not name.startswith("_")}
    reachable |= set(FILTERS) | set(TESTS) | set(WORKER_FUNCTIONS) | {"errorLogs"}
    assert sorted(reachable - set(EXPRESSIONS)) == []


# ------------------------------------------------------------------ generated flows

_KINDS = ["If", "Switch", "ForEach", "ForEachTyped", "WaitFor", "runIf", "Labels", "Subflow"]


def _leaf(task_id: str) -> dict[str, Any]:
    return {"id": task_id, "type": RETURN, "format": task_id}


def _template(expressions: list[str]) -> str:
    return "|".join("{{ " + e + " }}" for e in expressions) or "{{ uuid() }}"


def _site(kind: str, task_id: str, expressions: list[str], child: dict[str, Any] | None) -> Any:
    template = _template(expressions)
    body = [child] if child is not None else [_leaf(task_id + "_a")]
    task: dict[str, Any] = {"id": task_id, "allowFailure": True}
    if kind == "If":
        task |= {"type": f"{FLOW}.If", "condition": template, "then": body}
        task["else"] = [_leaf(task_id + "_b")]
    elif kind == "Switch":
        task |= {"type": f"{FLOW}.Switch", "value": template, "cases": {"x": body}}
        task["defaults"] = [_leaf(task_id + "_b")]
    elif kind == "ForEach":
        task |= {"type": f"{FLOW}.ForEach", "values": [template, "fixed"], "tasks": body}
    elif kind == "ForEachTyped":
        items = ", ".join(f"(({e}) ~ '')" for e in expressions) or "uuid()"
        task |= {"type": f"{FLOW}.ForEach", "values": "{{ [" + items + "] }}", "tasks": body}
    elif kind == "WaitFor":
        task |= {"type": f"{FLOW}.WaitFor", "condition": template, "tasks": body}
        task["checkFrequency"] = {"maxIterations": 2, "interval": "PT1S"}
    elif kind == "runIf":
        task |= _leaf(task_id) | {"runIf": template}
    elif kind == "Labels":
        task |= {"type": "io.kestra.plugin.core.execution.Labels", "labels": {"k": template}}
    else:
        task |= {"type": f"{FLOW}.Subflow", "namespace": "ns", "flowId": "child"}
        task |= {"inputs": {"x": template}, "labels": {"l": template}}
        task["outputs"] = {"o": template}
    return task


@st.composite
def _flows(draw: st.DrawFn) -> tuple[str, str]:
    """A parent flow and its child flow, each expression placed once, somewhere."""
    kinds = draw(st.lists(st.sampled_from(_KINDS), min_size=1, max_size=5))
    nested = [draw(st.sampled_from([None, *_KINDS])) for _ in kinds]
    # slots: each site, each nested site, the flow outputs, the child flow's outputs
    slots: list[list[str]] = [[] for _ in range(2 * len(kinds) + 2)]
    each = {i for i, kind in enumerate([*kinds, *nested]) if kind and kind.startswith("ForEach")}
    for name in sorted(EXPRESSIONS):
        expression = draw(st.sampled_from(EXPRESSIONS[name]), label=name)
        slot = draw(st.integers(0, len(slots) - 1), label=f"{name} slot")
        if name in _PROGRESS and slot in each:
            slot = len(slots) - 2  # the flow outputs
        slots[slot].append(expression)
    for i, slot in enumerate(slots):
        order = draw(st.permutations(slot), label=f"order {i}")
        failing = [e for e in order if any(e.startswith(f + "(") for f in _FAILING)]
        slots[i] = [e for e in order if e not in failing] + failing
    tasks = []
    for i, kind in enumerate(kinds):
        inner = nested[i]
        child = _site(inner, f"t{i}n", slots[len(kinds) + i], None) if inner else None
        if child is None:
            slots[-2] += slots[len(kinds) + i]
        tasks.append(_site(kind, f"t{i}", slots[i], child))
    parent = {
        "id": "f",
        "namespace": "ns",
        "tasks": tasks,
        "outputs": [{"id": "out", "type": "STRING", "value": _template(slots[-2])}],
    }
    child_flow = {
        "id": "child",
        "namespace": "ns",
        "inputs": [{"id": "x", "type": "STRING", "required": False}],
        "tasks": [_leaf("c")],
        "outputs": [{"id": "o", "type": "STRING", "value": _template(slots[-1])}],
    }
    return yaml.safe_dump(parent, sort_keys=False), yaml.safe_dump(child_flow, sort_keys=False)


# ------------------------------------------------------------------ applying twice


def _dump(result: StepResult) -> str:
    return json.dumps(
        {
            "state": result.state.model_dump(mode="json", by_alias=True) if result.state else None,
            "worker_tasks": [m.model_dump(mode="json", by_alias=True) for m in result.worker_tasks],
            "executor_inputs": [
                m.model_dump(mode="json", by_alias=True) for m in result.executor_inputs
            ],
            "kill_orders": [m.model_dump(mode="json", by_alias=True) for m in result.kill_orders],
            "logs": [m.model_dump(mode="json", by_alias=True) for m in result.logs],
            "changed": result.changed,
            "ended": result.ended,
        }
    )


def _with_secret(value: str, call: Callable[[], StepResult]) -> str:
    """``call`` with ``SECRET_...`` set to ``value`` in the environment (restored after)."""
    previous = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = base64.b64encode(value.encode()).decode()
    try:
        return _dump(call())
    finally:
        if previous is None:
            del os.environ[SECRET_ENV]
        else:
            os.environ[SECRET_ENV] = previous


def _copy_state(state: ExecutorState | None) -> ExecutorState | None:
    return None if state is None else ExecutorState.model_validate_json(state.model_dump_json())


class TwiceSim(Sim):
    """Applies each input twice before the harness applies it; the results must be equal."""

    compared: int = 0

    def _apply(self, event: ExecutorInput) -> None:
        state = self.states.get(event.execution_id)
        ex = event.execution if isinstance(event, NewExecution) else (state and state.execution)
        flow = self.catalog.of(ex) if ex is not None else None
        slots = None
        if ex is not None and flow is not None and flow.concurrency is not None:
            slots = self.slots.get(concurrency.execution_flow_key(ex))
        running = concurrency.running_count(slots, event.execution_id) if slots else 0
        encoded = event.model_dump_json()

        def once() -> StepResult:
            copy = type(event).model_validate_json(encoded)
            return step(
                flow, _copy_state(state), copy, self.now, self.config, running_count=running
            )

        assert _with_secret("first", once) == _with_secret("second", once), event.id
        if state is not None:

            def failing() -> StepResult:
                copy = _copy_state(state)
                assert copy is not None
                return fail(flow, copy, "input keeps failing", self.now, self.config)

            assert _with_secret("first", failing) == _with_secret("second", failing), event.id
        self.compared += 1
        super()._apply(event)


def _outcome(wt: WorkerTask) -> tuple[State, dict[str, Any] | None, str | None]:
    return State.SUCCESS, {"value": wt.task_run.task_id}, None


# no shrinking: each example runs a whole execution, three times per input, so shrinking a
# failure takes minutes; the failing input id and flow are reported as they are
@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(flows=_flows())
def test_step_twice_with_equal_arguments_gives_identical_results(flows: tuple[str, str]) -> None:
    parent, child = flows
    sim = TwiceSim(
        outcome=_outcome,
        config=CoreConfig(envs={"home": "/home/lanner"}, globals={"region": "eu-west"}),
    )
    sim.deploy(child)
    sim.deploy(parent)
    eid = sim.create("ns", "f", labels={"team": "data"})
    sim.run(max_steps=5_000)
    assert sim.execution(eid).state.current.terminal, parent
    assert sim.compared > 0


# ------------------------------------------------------------------ what the core's functions give


def test_now_in_the_core_is_the_now_of_the_step() -> None:
    sim, ex = run(
        """
        tasks:
          - id: stamp
            type: io.kestra.plugin.core.execution.Labels
            labels:
              at: "{{ now() }}"
              paris: "{{ now(timeZone='Europe/Paris') }}"
        """
    )
    assert ex.label_map()["at"] == "2024-01-01T10:00:00.000Z"
    assert ex.label_map()["paris"] == "2024-01-01T11:00:00.000+01:00"
    assert sim.now == START


def test_random_values_hold_for_a_task_run_and_differ_between_executions() -> None:
    body = """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: "{{ [uuid(), uuid(), randomInt(0, 1000000000)] }}"
            tasks:
              - id: leaf
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}"
        """
    sim, first = run(body)
    # rendered again at every input, the values stay those of the first render: three children
    values = [tr.value for tr in runs(first, "leaf")]
    assert first.state.current == State.SUCCESS
    assert len(values) == 3 and len(set(values)) == 3, values
    uuid.UUID(values[0], version=4)
    eid = sim.create("ns", "f")
    sim.run()
    again = [tr.value for tr in runs(sim.execution(eid), "leaf")]
    assert len(again) == 3 and set(again).isdisjoint(values)


def test_secret_in_a_property_the_executor_renders_fails_that_task_run() -> None:
    os.environ[SECRET_ENV] = base64.b64encode(b"s3cr3t-value").decode()
    try:
        _, ex = run(
            """
            tasks:
              - id: check
                type: io.kestra.plugin.core.flow.If
                condition: "{{ secret('LANNER_DETERMINISM') | length > 0 }}"
                then:
                  - id: ok
                    type: io.kestra.plugin.core.debug.Return
                    format: "ok"
            """
        )
    finally:
        del os.environ[SECRET_ENV]
    check = one(ex, "check")
    assert check.state.current == State.FAILED
    assert check.error is not None
    assert "function 'secret()' is only available in the properties of tasks run by a worker" in (
        check.error
    )
    assert "s3cr3t" not in check.error
    assert ex.state.current == State.FAILED
