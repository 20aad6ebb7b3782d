"""Typed execution inputs (Kestra's input types)."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import InputValidationError
from common.flow.inputs import typed_defaults, validate_inputs
from common.models.flow import Flow, Input


def flow_with(*inputs: dict[str, Any]) -> Flow:
    return Flow.model_construct(
        id="f", namespace="n", inputs=[Input.model_validate(i) for i in inputs]
    )


def one(spec: dict[str, Any], value: Any) -> Any:
    return validate_inputs(flow_with({"id": "x", **spec}), {"x": value})["x"]


def problems(spec: dict[str, Any], value: Any) -> list[tuple[str, str]]:
    with pytest.raises(InputValidationError) as info:
        validate_inputs(flow_with({"id": "x", **spec}), {"x": value})
    return [(p.path, p.message) for p in info.value.problems]


@pytest.mark.parametrize(
    ("spec", "raw", "expected"),
    [
        ({"type": "STRING"}, "hello", "hello"),
        ({"type": "STRING"}, 12, "12"),
        ({"type": "SECRET"}, "s3cr3t", "s3cr3t"),
        ({"type": "INT"}, "42", 42),
        ({"type": "INT"}, 42, 42),
        ({"type": "INT"}, " -7 ", -7),
        ({"type": "FLOAT"}, "4.5", 4.5),
        ({"type": "FLOAT"}, 3, 3.0),
        ({"type": "BOOLEAN"}, "true", True),
        ({"type": "BOOLEAN"}, "False", False),
        ({"type": "BOOL"}, True, True),
        ({"type": "DATETIME"}, "2024-01-15T10:00:00Z", "2024-01-15T10:00:00Z"),
        ({"type": "DATETIME"}, "2024-01-15T12:00:00+02:00", "2024-01-15T10:00:00Z"),
        ({"type": "DATETIME"}, "2024-01-15T10:00:00.5Z", "2024-01-15T10:00:00.500000Z"),
        ({"type": "DATETIME"}, "2024-01-15T10:00:00", "2024-01-15T10:00:00Z"),
        ({"type": "DATE"}, "2024-01-15", "2024-01-15"),
        ({"type": "TIME"}, "10:15:30", "10:15:30"),
        ({"type": "TIME"}, "10:15", "10:15:00"),
        ({"type": "DURATION"}, "PT5M", "PT5M"),
        ({"type": "JSON"}, '{"a": [1, 2]}', {"a": [1, 2]}),
        ({"type": "JSON"}, {"a": 1}, {"a": 1}),
        ({"type": "YAML"}, "a: 1\nb: [x]\n", {"a": 1, "b": ["x"]}),
        ({"type": "URI"}, "https://example.com/a.csv", "https://example.com/a.csv"),
        ({"type": "EMAIL"}, "ops@example.com", "ops@example.com"),
        ({"type": "ENUM", "values": ["a", "b"]}, "b", "b"),
        ({"type": "SELECT", "values": ["a", "b"]}, "a", "a"),
        ({"type": "SELECT", "values": ["a"], "allowCustomValue": True}, "z", "z"),
        ({"type": "MULTISELECT", "values": ["a", "b", "c"]}, '["a", "c"]', ["a", "c"]),
        ({"type": "MULTISELECT", "values": ["a", "b", "c"]}, ["b"], ["b"]),
        ({"type": "MULTISELECT", "options": ["a", "b"]}, "a,b", ["a", "b"]),
        ({"type": "ARRAY", "itemType": "INT"}, '[1, "2", 3]', [1, 2, 3]),
        ({"type": "ARRAY", "itemType": "STRING"}, ["a", "b"], ["a", "b"]),
        ({"type": "ARRAY"}, '["x"]', ["x"]),
        ({"type": "FILE"}, "lanner://main/n/f/executions/e/inputs/x/a.csv", None),
        ({"type": "STRING", "validator": "^[a-z]+$"}, "abc", "abc"),
        ({"type": "INT", "min": 1, "max": 10}, "10", 10),
        ({"type": "FLOAT", "min": 0.5}, "0.5", 0.5),
        ({"type": "DURATION", "min": "PT1M", "max": "PT1H"}, "PT30M", "PT30M"),
        ({"type": "DATE", "after": "2024-01-01"}, "2024-02-01", "2024-02-01"),
        (
            {"type": "DATETIME", "before": "2025-01-01T00:00:00Z"},
            "2024-06-01T00:00:00Z",
            "2024-06-01T00:00:00Z",
        ),
    ],
)
def test_valid_values(spec: dict[str, Any], raw: Any, expected: Any) -> None:
    assert one(spec, raw) == (raw if expected is None else expected)


@pytest.mark.parametrize(
    ("spec", "raw", "reason"),
    [
        ({"type": "INT"}, "abc", "'abc' is not an integer"),
        ({"type": "INT"}, "4.2", "is not an integer"),
        ({"type": "INT"}, True, "is not an integer"),
        ({"type": "FLOAT"}, "x1", "is not a number"),
        ({"type": "FLOAT"}, "nan", "is not a finite number"),
        ({"type": "BOOLEAN"}, "maybe", "is not a boolean"),
        ({"type": "DATETIME"}, "yesterday", "is not an ISO-8601 date-time"),
        ({"type": "DATE"}, "2024-13-01", "is not an ISO-8601 date"),
        ({"type": "TIME"}, "25:00", "is not an ISO-8601 time"),
        ({"type": "DURATION"}, "5 minutes", "is not an ISO-8601 duration"),
        ({"type": "JSON"}, "{oops", "invalid JSON"),
        ({"type": "YAML"}, "a: [1", "invalid YAML"),
        ({"type": "URI"}, "not a uri", "is not a URI"),
        ({"type": "EMAIL"}, "nobody", "is not an email address"),
        ({"type": "SELECT", "values": ["a", "b"]}, "c", "'c' is not one of a, b"),
        ({"type": "MULTISELECT", "values": ["a"]}, '["a", "z"]', "'z' is not one of a"),
        ({"type": "ARRAY"}, "x", "is not a list"),
        ({"type": "FILE"}, "just text", "upload it as a multipart file"),
        ({"type": "FILE", "extension": ".csv"}, "lanner://x/a.txt", "extension"),
        ({"type": "STRING", "validator": "^[a-z]+$"}, "abc1", "does not match the pattern"),
        ({"type": "INT", "min": 1}, "0", "lower than the minimum 1"),
        ({"type": "INT", "max": 5}, "6", "greater than the maximum 5"),
        ({"type": "DURATION", "max": "PT1H"}, "PT2H", "longer than the maximum"),
        ({"type": "DATE", "before": "2024-01-01"}, "2024-02-01", "is not before"),
        ({"type": "DATETIME", "after": "2024-01-01T00:00:00Z"}, "2023-01-01T00:00:00Z", "after"),
        ({"type": "TIME", "after": "10:00:00"}, "09:00", "is not after"),
    ],
)
def test_invalid_values(spec: dict[str, Any], raw: Any, reason: str) -> None:
    found = problems(spec, raw)
    assert len(found) == 1
    assert found[0][0] == "inputs.x"
    assert reason in found[0][1]


def test_array_items_are_located() -> None:
    found = problems({"type": "ARRAY", "itemType": "INT"}, '[1, "a", 3, "b"]')
    assert found == [
        ("inputs.x[1]", "'a' is not an integer"),
        ("inputs.x[3]", "'b' is not an integer"),
    ]


def test_every_problem_is_reported() -> None:
    flow = flow_with(
        {"id": "int", "type": "INT"},
        {"id": "required", "type": "STRING"},
        {"id": "ok", "type": "STRING"},
        {"id": "when", "type": "DATE"},
    )
    with pytest.raises(InputValidationError) as info:
        validate_inputs(flow, {"int": "abc", "ok": "fine", "when": "never"})
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("inputs.int", "'abc' is not an integer"),
        ("inputs.required", "missing required input"),
        ("inputs.when", "'never' is not an ISO-8601 date (example: 2024-01-15)"),
    ]
    assert "inputs.int" in str(info.value)


def test_required_optional_and_defaults() -> None:
    flow = flow_with(
        {"id": "opt", "type": "STRING", "required": False},
        {"id": "num", "type": "INT", "defaults": "7"},
        {"id": "tpl", "type": "STRING", "defaults": "{{ now() }}"},
        {"id": "empty", "type": "INT", "required": False},
    )
    assert validate_inputs(flow, {"empty": ""}) == {
        "opt": None,
        "num": 7,
        "tpl": "{{ now() }}",
        "empty": None,
    }
    assert validate_inputs(flow, {"num": "8", "opt": "x"})["num"] == 8


def test_missing_required_input() -> None:
    assert problems({"type": "INT"}, None) == [("inputs.x", "missing required input")]
    assert problems({"type": "STRING"}, "") == [("inputs.x", "missing required input")]


def test_dotted_ids_stay_flat_and_unknown_inputs_are_ignored() -> None:
    flow = flow_with({"id": "nested.more.int", "type": "INT"})
    assert validate_inputs(flow, {"nested.more.int": "3", "unknown": 1}) == {"nested.more.int": 3}


def test_files_come_from_the_upload_map() -> None:
    flow = flow_with({"id": "data", "type": "FILE"})
    uri = "lanner://main/n/f/executions/e/inputs/data/a.csv"
    assert validate_inputs(flow, {}, files={"data": uri}) == {"data": uri}


def test_select_with_expression_values_is_not_checked() -> None:
    assert one({"type": "SELECT", "expression": "{{ x }}", "values": "{{ vars.list }}"}, "q") == "q"


def test_typed_defaults() -> None:
    flow = flow_with(
        {"id": "a", "type": "INT", "defaults": 3},
        {"id": "b", "type": "STRING"},
        {"id": "c", "type": "JSON", "defaults": '{"k": 1}'},
        {"id": "d", "type": "DATETIME", "defaults": "{{ now() }}"},
    )
    assert typed_defaults(flow) == {"a": 3, "c": {"k": 1}, "d": "{{ now() }}"}
    with pytest.raises(InputValidationError) as info:
        typed_defaults(flow_with({"id": "bad", "type": "INT", "defaults": "x"}))
    assert info.value.problems[0].path == "inputs.bad.defaults"


def test_a_backtracking_validator_is_cut_not_hung(monkeypatch: pytest.MonkeyPatch) -> None:
    """A STRING input's validator is a user regex the webserver runs at execution creation:
    a catastrophic one (a backreference: RE2 cannot take it) runs in a helper process killed
    at its deadline (``common.bounded``; lowered here to keep the test short), and the
    input is refused naming the limit. Without a backreference RE2 runs it in linear time."""
    from common import bounded

    monkeypatch.setattr(bounded, "MAX_REGEX_SECONDS", 0.3)
    spec = {"type": "STRING", "validator": r"(a+)+\1$"}
    found = problems(spec, "a" * 64 + "b")
    assert found[0][0] == "inputs.x"
    assert "did not finish within 0.3 s (limit)" in found[0][1]
    assert one({"type": "STRING", "validator": r"(a+)+$"}, "a" * 5000) == "a" * 5000
    assert problems({"type": "STRING", "validator": r"(a+)+$"}, "a" * 5000 + "b")
