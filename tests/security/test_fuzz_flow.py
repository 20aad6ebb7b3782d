"""Property tests (hypothesis) on the two parsers of user input that never go through the API's
schema: the flow YAML parser and the execution input coercers.

Whatever the input, ``parse_flow`` returns a ``Flow`` or raises ``FlowValidationError`` with
located problems, and ``validate_inputs`` returns a typed value per input or raises
``InputValidationError`` naming ``inputs.<id>``: never another exception (a 500, a crashed
executor). Deterministic (``derandomize``), so ``make test`` runs the same examples every time.
"""

from __future__ import annotations

import string
from typing import Any, get_args

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import FlowValidationError, InputValidationError
from common.flow import parse_flow
from common.flow.inputs import validate_inputs
from common.models.flow import Flow, InputType

# examples run per property; the conftest prints the totals
EXAMPLES: dict[str, int] = {}
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _count(name: str) -> None:
    EXAMPLES[name] = EXAMPLES.get(name, 0) + 1


VALID = {
    "id": "hello",
    "namespace": "company.team",
    "inputs": [{"id": "name", "type": "STRING", "defaults": "world"}],
    "tasks": [
        {"id": "log", "type": "io.kestra.plugin.core.log.Log", "message": "hi {{ inputs.name }}"}
    ],
    "triggers": [
        {"id": "daily", "type": "io.kestra.plugin.core.trigger.Schedule", "cron": "@daily"}
    ],
}

KEYS = [
    "id",
    "namespace",
    "tasks",
    "inputs",
    "type",
    "message",
    "labels",
    "variables",
    "errors",
    "finally",
    "outputs",
    "triggers",
    "concurrency",
    "retry",
    "disabled",
    "timeout",
    "runIf",
    "workerGroup",
    "pluginDefaults",
    "values",
    "value",
    "then",
    "else",
    "cases",
    "defaults",
    "cron",
    "limit",
    "behavior",
    "maxAttempt",
    "interval",
    "required",
    "itemType",
    "format",
]
TYPES = [
    "io.kestra.plugin.core.log.Log",
    "io.kestra.plugin.core.flow.Parallel",
    "io.kestra.plugin.core.flow.Switch",
    "io.kestra.plugin.core.flow.If",
    "io.kestra.plugin.core.flow.ForEach",
    "io.kestra.plugin.core.flow.Subflow",
    "io.kestra.plugin.core.debug.Return",
    "lanner.core.flow.Pause",
    "io.kestra.nope.Nope",
    "STRING",
    "INT",
    "ARRAY",
    "SELECT",
    "constant",
    "exponential",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(KEYS + TYPES + ["{{ inputs.x }}", "{{", "PT1S", "P-1D", "@daily"]),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=25,
)


def _parse_only_fails_cleanly(source: str) -> None:
    try:
        flow = parse_flow(source, check_templates=True)
    except FlowValidationError as exc:
        assert exc.problems, "a FlowValidationError names at least one problem"
        for problem in exc.problems:
            assert problem.message and isinstance(problem.path, str)
        return
    assert isinstance(flow, Flow)


@FUZZ
@given(st.text(alphabet=string.printable + "ä€\x00\ufeff", max_size=300))
def test_any_text_is_a_flow_or_a_validation_error(source: str) -> None:
    _count("flow parser: text")
    _parse_only_fails_cleanly(source)


@FUZZ
@given(structures)
def test_any_yaml_structure_is_a_flow_or_a_validation_error(data: Any) -> None:
    _count("flow parser: YAML structures")
    _parse_only_fails_cleanly(yaml.safe_dump(data, allow_unicode=True))


@st.composite
def mutated_flows(draw: st.DrawFn) -> Any:
    """A valid flow with one value somewhere inside replaced by arbitrary data."""
    flow: Any = yaml.safe_load(yaml.safe_dump(VALID))
    node = flow
    for _ in range(draw(st.integers(0, 4))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if not isinstance(node[key], dict | list) or not node[key]:
                break
            node = node[key]
        elif isinstance(node, list) and node:
            index = draw(st.integers(0, len(node) - 1))
            if not isinstance(node[index], dict | list) or not node[index]:
                break
            node = node[index]
    if isinstance(node, dict):
        node[draw(st.sampled_from(KEYS + sorted(node)))] = draw(structures)
    elif isinstance(node, list):
        node.append(draw(structures))
    return flow


@FUZZ
@given(mutated_flows())
def test_a_mutated_flow_is_a_flow_or_a_validation_error(data: Any) -> None:
    _count("flow parser: mutated flows")
    _parse_only_fails_cleanly(yaml.safe_dump(data, allow_unicode=True))


INPUT_TYPES = list(get_args(InputType))
values = st.one_of(
    structures,
    st.sampled_from(
        [
            "2024-01-01T10:00:00Z",
            "2024-13-45",
            "10:61",
            "PT1H",
            "P1D",
            "PT",
            "1e999",
            "-0",
            "NaN",
            "Infinity",
            "true",
            "yes",
            "[1, 2]",
            '{"a": 1}',
            "a: [",
            "http://x",
            "::",
            "kestra:///f.txt",
            "nsfile:///x",
            "a@b.c",
            "1,2,3",
            "x" * 5_000,
            "\x00",
        ]
    ),
)
spec_options = st.fixed_dictionaries(
    {},
    optional={
        "required": st.booleans(),
        "defaults": values,
        "values": st.one_of(st.lists(st.text(max_size=5), max_size=3), st.text(max_size=5)),
        "itemType": st.sampled_from([*INPUT_TYPES, "NOPE"]),
        "validator": st.sampled_from(["^a+$", "(", "[a-z]*", ".*"]),
        "min": values,
        "max": values,
        "after": values,
        "before": values,
        "extension": st.sampled_from([".txt", ".csv,.json", ""]),
        "allowCustomValue": st.booleans(),
    },
)


@FUZZ
@given(st.sampled_from(INPUT_TYPES), spec_options, st.one_of(st.none(), values))
def test_an_input_value_is_typed_or_names_its_input(
    kind: str, options: dict[str, Any], value: Any
) -> None:
    _count("input coercers")
    source = {"id": "f", "namespace": "n", "tasks": VALID["tasks"]}
    source["inputs"] = [{"id": "the_input", "type": kind, **options}]
    try:
        flow = parse_flow(yaml.safe_dump(source, allow_unicode=True))
    except FlowValidationError:
        return  # the spec itself is refused when the flow is saved: nothing to coerce
    _count("input coercers: values coerced")
    raw = {} if value is None else {"the_input": value}
    try:
        typed = validate_inputs(flow, raw)
    except InputValidationError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.path.startswith("inputs.the_input"), problem
            assert problem.message
        return
    assert set(typed) == {"the_input"}


@pytest.mark.parametrize(
    "fragment",
    [
        "labels: [null]",  # found by the mutated flows: an AttributeError, a 500 on save
        "labels: [a, b]",
        "inputs: [{id: s, type: STRING, validator: '('}]",  # an re.error at execution creation
        "inputs: [{id: n, type: INT, min: [1, 2]}]",  # a TypeError at execution creation
        "inputs: [{id: d, type: DATE, after: soon}]",
    ],
)
def test_found_cases_are_validation_errors(fragment: str) -> None:
    source = (
        "id: f\nnamespace: n\ntasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: x}]\n"
    )
    with pytest.raises(FlowValidationError):
        parse_flow(source + fragment + "\n")
