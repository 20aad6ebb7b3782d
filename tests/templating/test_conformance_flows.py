"""Every ``{{ }}``/``{% %}`` string of the conformance flows renders (or fails cleanly)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from common.errors import TemplateError
from common.templating import render, render_typed
from tests.conformance.manifest import CONFORMANCE_DIR

FLOWS = CONFORMANCE_DIR / "flows"
START = dt.datetime(2024, 1, 1, 10, 0, 0, 123000, tzinfo=dt.UTC)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _templates() -> list[tuple[str, str]]:
    if not FLOWS.is_dir():
        return []
    found: list[tuple[str, str]] = []
    for path in sorted(FLOWS.iterdir()):
        if path.suffix in (".yaml", ".yml"):
            for document in yaml.safe_load_all(path.read_text()):
                found.extend((path.name, s) for s in _strings(document))
    return found


def _variables() -> dict[str, Any]:
    return {
        "flow": {"id": "each", "namespace": "io.kestra.tests"},
        "execution": {"id": "5Lx9dAbc", "startDate": START},
        "task": {"id": "t1", "type": "io.kestra.plugin.core.log.Log"},
        "taskrun": {"id": "tr1", "startDate": START, "value": "a", "attemptsCount": 1},
        "parent": {"taskrun": {"value": '{"key": "k", "value": "v"}'}},
        "parents": [{"taskrun": {"value": "p0"}}, {"taskrun": {"value": "p1"}}],
        "inputs": {
            "string": "myString",
            "int": 42,
            "float": 42.42,
            "instant": START,
            "array": [1, 2],
            "json": {"a": 1},
            "yaml": {"b": [1, 2]},
            "file": "kestra:///ns/flow/file.txt",
            "secret": "s3cr3t",
            "optional": None,
            "param": "fail",
            "def": "default",
            "executionId": "e1",
            "from-parent": "fp",
            "if1": True,
            "if2": False,
            "if3": "true",
            "crash": "no",
            "emptyKey": {"foo": ""},
            "emptySubObject": {"json": {"someEmptyObject": {}}},
            "labelsJson": '{"a": "b"}',
            "labelsMapKey": "k",
            "labelsMapValue": "v",
            "labelsListKey": "lk",
            "labelsListValue": "lv",
        },
        "outputs": {
            "t2": {"value": "v2"},
            "only": {"value": "only"},
            "json": {"value": '{"a":1}'},
            "return": {"value": "r", "values": {"one": 1, "two": 2}},
            "output": {"values": {"taskrun_data": 1}},
            "output_values": {"values": {"count": "4"}},
            "waitfor": {"iterationCount": 2},
            "pause": {"onResume": {"asked": "yes"}},
            "default": {"value": None},
            "error-t1": {"value": "from error"},
            "1-1_return": {"a": {"value": "1-1"}},
            "1-1-1_output": {
                "a": {"value": "direct"},
                "p1": {"p0": {"a": {"value": "nested"}}},
            },
            "2-1_output": {"p1": {"p0": {"a": {"value": "each2"}}}},
            "2-1-1_output": {"value": "211"},
            "1-2-1_return": {"s1": {"a": {"value": "x"}, "a a": {"value": "y"}}},
        },
        "vars": {"first": "1", "second": "{{vars.first}} > 2", "third": "{{vars.second}} > 3"},
        "envs": {"test1": "true", "test2": "Pass by env"},
        "globals": {"string": "string", "int": 1, "bool": True, "nested": {"int": 2}},
        "labels": {"key1": "value1", "system": {"correlationId": "5Lx9dAbc"}},
        "trigger": {"executionId": "e0", "namespace": "ns", "flowId": "f", "state": "SUCCESS"},
    }


def _error_logs() -> list[dict[str, str]]:
    return [{"taskId": "failed", "message": "Task failure"}]


# Strings that must fail: undefined on purpose, or invalid syntax on purpose.
EXPECTED_FAILURES = {
    "{{ invalid }}",
    "{{missingVar}}",
    "{{ outputs.notexists == 2 }}",
    "{{ taskrun.attemptsCount == 3 ? 'ok' : ko}}",
    "{{ parent.taskrun.value == 'value 1' ? 'ok' : ko }}",
    "{{parents[0].taskrun.value == 'CUMULATIVE' and {% for entry in json(taskrun.value) %}"
    "{{ entry.key }}{% endfor %}== 'NEW_MONTH'}}",
}

TEMPLATES = _templates()


def test_flows_were_found() -> None:
    assert FLOWS.is_dir(), f"conformance flows not found at {FLOWS}: set LANNER_CONFORMANCE_DIR"
    assert len(TEMPLATES) > 50


@pytest.mark.parametrize(
    ("flow", "template"), TEMPLATES, ids=[f"{f}:{t[:40]}" for f, t in TEMPLATES]
)
def test_flow_expression_renders(flow: str, template: str) -> None:
    functions = {"errorLogs": _error_logs}
    if template.strip() in EXPECTED_FAILURES:
        with pytest.raises(TemplateError):
            render(template, _variables(), functions=functions)
        return
    rendered = render(template, _variables(), functions=functions)
    assert isinstance(rendered, str)
    render_typed(template, _variables(), functions=functions)


def test_flow_expressions_give_kestra_results() -> None:
    variables = _variables()
    cases = {
        "{{render(vars.third)}}": "1 > 2 > 3",
        "{{ flow.namespace ~ '.' ~ flow.id }}": "io.kestra.tests.each",
        "{{ inputs.crash is defined }}": "true",
        "{{ outputs.default.value ?? outputs['error-t1'].value }}": "from error",
        "{{ outputs.not_existing ?? '' }}": "",
        "{{outputs.pause.onResume.asked ?? 'MISSING'}}": "yes",
        "{{ outputs.waitfor.iterationCount + 1 }}": "3",
        "{{ outputs.output_values.values.count != '4'}}": "false",
        "{{ outputs.output['values']['taskrun_data'] == 1 }}": "true",
        "{{ outputs.return.values.one }}": "1",
        "{{ currentEachOutput(outputs['2-1_output']).value }}": "each2",
        "{{ outputs['1-1-1_output'][parents[1].taskrun.value][parents[0].taskrun.value]"
        "[taskrun.value].value }}": "nested",
        "{{task.id}} > {{outputs['1-2-1_return'].s1['a a'].value}}": "t1 > y",
        "{{ parent.taskrun.value | jq('.key') }}": '["k"]',
        "{{ taskrun.value is json }}": "false",
        "{{ taskrun.value equals 'value 2' }}": "false",
        "{{taskrun.attemptsCount == 1 ? 'ok' : ko}}": "ok",
        "{{envs.test1}} {{envs.test2}}": "true Pass by env",
        "{{globals.string}} {{globals.int}} {{globals.bool}} {{globals.nested.int}}": (
            "string 1 true 2"
        ),
        "{{labels.system.correlationId}}": "5Lx9dAbc",
        "{{ inputs['emptyKey']['foo'] }}": "",
        "{{ inputs.emptySubObject.json.someEmptyObject }}": "{}",
        "{{inputs.array}}": "[1,2]",
        "{{inputs.float}}": "42.42",
        "{{inputs.instant}}": "2024-01-01T10:00:00.123Z",
        "{{ task.id }} > {{ taskrun.startDate }}": "t1 > 2024-01-01T10:00:00.123Z",
        "{{ trigger | json }}": (
            '{"executionId":"e0","namespace":"ns","flowId":"f","state":"SUCCESS"}'
        ),
        "{%- for log in errorLogs() -%}\n- task: {{ log.taskId }}, message: {{ log.message }}\n"
        "{%- endfor -%}\n": "- task: failed, message: Task failure",
    }
    for template, expected in cases.items():
        assert render(template, variables, functions={"errorLogs": _error_logs}) == expected, (
            template
        )


def test_typed_flow_values() -> None:
    variables = _variables()
    assert render_typed("{{inputs.array}}", variables) == [1, 2]
    assert render_typed("{{ inputs.labelsJson }}", variables) == '{"a": "b"}'


def test_tag_inside_expression_is_an_error() -> None:
    template = (
        "{{parents[0].taskrun.value == 'CUMULATIVE' and {% for entry in json(taskrun.value) %}"
        "{{ entry.key }}{% endfor %}== 'NEW_MONTH'}}"
    )
    with pytest.raises(TemplateError, match="inside an expression"):
        render(template, _variables())
