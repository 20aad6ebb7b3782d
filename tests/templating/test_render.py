"""Pebble semantics: output conversion, operators, tags, whitespace, typed rendering."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import TemplateError
from common.templating import is_true, render, render_condition, render_object, render_typed

V: dict[str, Any] = {
    "inputs": {"name": "World", "n": 3, "f": 3.0, "b": True, "l": [1, 2, 3], "m": {"a": 1}},
    "outputs": {"id-with-dash": {"value": "dash"}, "x": {"1": {"value": "one"}}},
    "taskrun": {"value": "1"},
    "none": None,
}


def r(template: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> str:
    return render(template, V if variables is None else variables, **kwargs)


# -- output conversion ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1, "b": [1, "x"]}, '{"a":1,"b":[1,"x"]}'),
        ([], "[]"),
        ({}, "{}"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        (42, "42"),
        (3.0, "3.0"),
        (3.14, "3.14"),
        (1e10, "1.0E10"),
        (1.5e-5, "1.5E-5"),
        (-2.5e20, "-2.5E20"),
        (Decimal("1.10"), "1.10"),
        ("é", "é"),
        (dt.datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=dt.UTC), "2024-01-01T10:00:00.123Z"),
        (
            dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            ("2024-01-01T10:00:00.000+01:00"),
        ),
        (dt.date(2024, 1, 1), "2024-01-01"),
        (dt.timedelta(hours=1, minutes=30), "PT1H30M"),
        ({"d": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}, '{"d":"2024-01-01T00:00:00.000Z"}'),
    ],
)
def test_output_conversion(value: Any, expected: str) -> None:
    assert render("{{ v }}", {"v": value}) == expected


def test_concatenation_uses_the_same_conversion() -> None:
    assert r("{{ 'a' ~ inputs.b ~ none ~ inputs.f ~ inputs.m }}") == 'atrue3.0{"a":1}'


def test_string_without_brace_is_returned_unchanged() -> None:
    text = "no templates here %} }} #}"
    assert render(text, {}) is text


def test_literal_braces_pass_through() -> None:
    assert r("{task.id}} and { x } and {") == "{task.id}} and { x } and {"
    assert r("a{ {{ inputs.n }} }b") == "a{ 3 }b"


@given(st.text(alphabet=st.characters(blacklist_characters="{")))
def test_text_without_openers_is_identity(text: str) -> None:
    assert render(text, {}) == text


@given(st.text())
def test_string_literals_round_trip(text: str) -> None:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    assert render("{{ '" + escaped + "' }}", {}) == text


@given(st.text().filter(lambda s: not any(x in s for x in ("{{", "{%", "{#")) and s[-1:] != "{"))
def test_text_around_expressions_is_kept(text: str) -> None:
    assert render(text + "{{ 1 }}" + text, {}) == text + "1" + text


def test_no_trailing_newline_trimming() -> None:
    assert r("{{ inputs.n }}\n") == "3\n"
    assert r("{% if true %}\nx\n{% endif %}\n") == "\nx\n\n"


# -- variables and lookups ----------------------------------------------------------------------
def test_subscripts_and_attributes() -> None:
    assert r("{{ outputs['id-with-dash'].value }}") == "dash"
    assert r("{{ outputs.x[taskrun.value].value }}") == "one"
    assert r("{{ inputs.l[0] }}{{ inputs['l'][2] }}") == "13"


def test_int_and_string_keys_are_interchangeable() -> None:
    variables = {"m": {1: "int-key", "2": "str-key"}}
    assert render("{{ m['1'] }} {{ m[2] }}", variables) == "int-key str-key"


def test_map_keys_win_over_python_methods() -> None:
    variables = {"o": {"values": {"count": 4}, "keys": "k", "items": 1}}
    assert render("{{ o.values.count }} {{ o.keys }} {{ o.items }}", variables) == "4 k 1"


# -- operators ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.missing ?? 'd' }}", "d"),
        ("{{ none ?? 'd' }}", "d"),
        ("{{ outputs.pause.onResume.asked ?? 'MISSING' }}", "MISSING"),
        ("{{ nothing.at.all ?? also.missing ?? 'third' }}", "third"),
        ("{{ inputs.n ?? 'd' }}", "3"),
        ("{{ (inputs.failed ?? 'NONE') == 'NONE' }}", "true"),
        ("{{ inputs.failed ?? 'NONE' == 'NONE' }}", "true"),
        ("{{ inputs.n == 3 ? 'yes' : undefined_name }}", "yes"),
        ("{{ inputs.n != 3 ? undefined_name : 'no' }}", "no"),
        ("{{ true ? false ? 'a' : 'b' : 'c' }}", "b"),
        ("{{ inputs.name equals 'World' }}", "true"),
        ("{{ inputs.n > 2 and inputs.n < 4 }}", "true"),
        ("{{ inputs.n > 5 or not inputs.b }}", "false"),
        ("{{ not inputs.b }}", "false"),
        ("{{ 1 + 2 * 3 }}", "7"),
        ("{{ (1 + 2) * 3 }}", "9"),
        ("{{ 7 / 2 }} {{ -7 / 2 }} {{ 7.0 / 2 }} {{ -7 % 3 }}", "3 -3 3.5 -1"),
        ("{{ 'a' ~ 1 + 2 }}", "a12"),
        ("{{ -1 | abs }}", "1"),
        ("{{ 'ab' ~ 'cd' | upper }}", "ABCD"),
        ("{{ 1..3 }}", "[1,2,3]"),
        (
            "{{ inputs.l contains 2 }} {{ inputs.m contains 'a' }} {{ 'abc' contains 'd' }}",
            ("true true false"),
        ),
        (
            "{{ inputs.x is defined }} {{ inputs.n is defined }} {{ nope is not defined }}",
            ("false true true"),
        ),
        (
            "{{ inputs.missing is null }} {{ none is null }} {{ inputs.n is not null }}",
            ("true true true"),
        ),
        ("{{ '{\"a\":1}' is json }} {{ 'nope' is json }}", "true false"),
        ("{{ '' is empty }} {{ inputs.l is empty }} {{ [] is empty }}", "true false true"),
        (
            "{{ 2 is even }} {{ 3 is odd }} {{ inputs.m is map }} {{ inputs.l is iterable }}",
            ("true true true true"),
        ),
        ("{{ [1, 'a', inputs.n] }} {{ {'k': inputs.n} }}", '[1,"a",3] {"k":3}'),
        ("{{ \"double\" ~ 'single' }}", "doublesingle"),
        ("{{ 'it\\'s' }}", "it's"),
    ],
)
def test_operators(template: str, expected: str) -> None:
    assert r(template) == expected


def test_undefined_root_under_is_defined() -> None:
    assert render("{{ inputs.crash is defined }}", {}) == "false"


# -- tags ---------------------------------------------------------------------------------------
def test_for_loop_with_whitespace_control() -> None:
    template = "{%- for x in inputs.l -%}\n  {{ x }},\n{%- endfor -%}\n"
    assert r(template) == "1,2,3,"


def test_for_over_map_gives_entries_and_pebble_loop_index() -> None:
    template = "{% for e in inputs.m %}{{ loop.index }}:{{ e.key }}={{ e.value }}{% endfor %}"
    assert r(template) == "0:a=1"


def test_for_else_if_elseif_set() -> None:
    assert r("{% for x in [] %}x{% else %}empty{% endfor %}") == "empty"
    template = "{% if inputs.n > 5 %}big{% elseif inputs.n > 2 %}mid{% else %}small{% endif %}"
    assert r(template) == "mid"
    assert r("{% set y = inputs.n * 2 %}{{ y }}") == "6"
    assert r("{% for x in none %}x{% endfor %}done") == "done"


def test_raw_and_comments() -> None:
    assert r("{% raw %}{{ not rendered }}{% endraw %}") == "{{ not rendered }}"
    assert r("{% verbatim %}{% if %}{% endverbatim %}") == "{% if %}"
    assert r("a{# comment #}b") == "ab"
    assert r("a {#- c -#} b") == "ab"


def test_expression_whitespace_control() -> None:
    assert r("a  {{- inputs.n -}}  b") == "a3b"


def test_filter_tag() -> None:
    assert r("{% filter upper %}hi {{ inputs.name }}{% endfilter %}") == "HI WORLD"


# -- typed, objects, truthiness ----------------------------------------------------------
def test_render_typed() -> None:
    assert render_typed("{{ inputs.l }}", V) == [1, 2, 3]
    assert render_typed("  {{ inputs.m }} \n", V) == {"a": 1}
    assert render_typed("{{ inputs.n }}", V) == 3
    assert render_typed("{{ none }}", V) is None
    assert render_typed("x {{ inputs.n }}", V) == "x 3"
    assert render_typed("plain", V) == "plain"
    with pytest.raises(TemplateError, match="missing"):
        render_typed("{{ [inputs.missing] }}", V)


def test_render_object_renders_keys_and_values() -> None:
    value = {"{{ inputs.name }}": ["{{ inputs.n }}", 1, None, {"k": "{{ inputs.b }}"}], "x": 2.5}
    assert render_object(value, V) == {"World": ["3", 1, None, {"k": "true"}], "x": 2.5}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("FALSE", False),
        (" False ", False),
        ("0", False),
        ("-0", False),
        ("", False),
        ("  ", False),
        ("1", True),
        ("no", True),
        ("null", True),
    ],
)
def test_is_true(text: str, expected: bool) -> None:
    assert is_true(text) is expected


def test_render_condition() -> None:
    assert render_condition("{{ inputs.n == 3 }}", V) is True
    assert render_condition("{{ inputs.n == 4 }}", V) is False
    assert render_condition("{{ none }}", V) is False
