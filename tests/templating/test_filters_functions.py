"""Kestra/Pebble filters and functions."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from common.errors import TemplateError
from common.templating import render, render_typed

NOW = dt.datetime(2024, 1, 15, 10, 30, 45, 123456, tzinfo=dt.UTC)
V: dict[str, Any] = {
    "d": NOW,
    "m": {"b": 2, "a": 1},
    "l": [3, 1, 2],
    "s": "Hello World",
    "j": '{"key": "k", "list": [1, 2]}',
}


def r(template: str, **kwargs: Any) -> str:
    return render(template, V, **kwargs)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ m | json }}", '{"b":2,"a":1}'),
        ("{{ m | toJson }}", '{"b":2,"a":1}'),
        ("{{ s | json }}", '"Hello World"'),
        ("{{ (j | fromJson).key }}", "k"),
        ("{{ j | jq('.key') }}", '["k"]'),
        ("{{ j | jq('.list[]') }}", "[1,2]"),
        ("{{ m | jq('.a') | first }}", "1"),
        ("{{ d | date('yyyy-MM-dd HH:mm:ss') }}", "2024-01-15 10:30:45"),
        ("{{ d | date('yyyy-MM-dd HH:mm', timeZone='Europe/Paris') }}", "2024-01-15 11:30"),
        ("{{ d | date('iso') }}", "2024-01-15T10:30:45.123456Z"),
        ("{{ d | date('sql') }}", "2024-01-15 10:30:45.123456"),
        ("{{ d | date }}", "2024-01-15T10:30:45.123456Z"),
        ('{{ d | date("EEEE d MMMM yy, h a, SSS XXX") }}', "Monday 15 January 24, 10 AM, 123 Z"),
        ("{{ '2024-01-15T10:30:45Z' | date('dd/MM/yyyy') }}", "15/01/2024"),
        ("{{ '2024-01-15' | date('yyyy') }}", "2024"),
        ("{{ 0 | date('yyyy-MM-dd') }}", "1970-01-01"),
        ("{{ '15/01/2024' | date('yyyy-MM-dd', existingFormat='dd/MM/yyyy') }}", "2024-01-15"),
        ("{{ d | dateAdd(1, 'DAYS') | date('yyyy-MM-dd') }}", "2024-01-16"),
        ("{{ d | dateAdd(-2, 'HOURS', format='HH') }}", "08"),
        ("{{ '2024-01-31' | dateAdd(1, 'MONTHS') | date('yyyy-MM-dd') }}", "2024-02-29"),
        ("{{ d | timestamp }}", "1705314645"),
        ("{{ d | timestampMilli }}", "1705314645123"),
        ("{{ m | keys }}", '["b","a"]'),
        ("{{ m | values }}", "[2,1]"),
        ("{{ '42' | number + 1 }}", "43"),
        ("{{ '4.5' | number }}", "4.5"),
        ("{{ '4' | number('DOUBLE') }}", "4.0"),
        ("{{ 'Héllo Wörld!' | slugify }}", "hello-world"),
        ("{{ 'a.b.c' | substringBefore('.') }}", "a"),
        ("{{ 'a.b.c' | substringAfter('.') }}", "b.c"),
        ("{{ 'a.b.c' | substringBeforeLast('.') }}", "a.b"),
        ("{{ 'a.b.c' | substringAfterLast('.') }}", "c"),
        ("{{ 'abc' | substringAfter('x') }}|{{ 'abc' | substringBefore('x') }}", "|abc"),
        ("{{ s | startsWith('Hello') }} {{ s | endsWith('x') }}", "true false"),
        ("{{ m | yaml }}", "b: 2\na: 1\n"),
        ("{{ 'a\nb' | indent(2) }}", "a\n  b"),
        ("{{ 'a\nb' | nindent(2) }}", "\n  a\n  b"),
        ("{{ l | chunk(2) }}", "[[3,1],[2]]"),
        ("{{ [[1, 2], [3], 4] | flatten }}", "[1,2,3,4]"),
        ("{{ \"it's\" | escapeChar('single') }}", "it\\'s"),
        ("{{ \"it's\" | escapeChar('shell') }}", "it'\\''s"),
        ("{{ 'a b&c' | urlencode }}", "a+b%26c"),
        ("{{ 'a+b%26c' | urldecode }}", "a b&c"),
        ("{{ 'abc' | md5 }}", "900150983cd24fb0d6963f7d28e17f72"),
        ("{{ 'abc' | sha1 }}", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            "{{ 'abc' | sha256 }}",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        ("{{ 'abc' | sha512 | length }}", "128"),
        ("{{ 'hi' | base64encode }} {{ 'aGk=' | base64decode }}", "aGk= hi"),
        ("{{ s | upper }} {{ s | lower }}", "HELLO WORLD hello world"),
        (
            "{{ 'hello wORLD' | title }} {{ 'hello wORLD' | capitalize }}",
            ("Hello WORLD Hello wORLD"),
        ),
        ("[{{ '  x  ' | trim }}]", "[x]"),
        ("{{ s | length }} {{ l | length }} {{ m | length }}", "11 3 2"),
        ("{{ l | first }} {{ l | last }} {{ s | first }}", "3 2 H"),
        ("{{ l | join(', ') }}", "3, 1, 2"),
        ("{{ 'a,b,c' | split(',') }}", '["a","b","c"]'),
        ("{{ s | replace({'Hello': 'Bye', 'World': 'All'}) }}", "Bye All"),
        ("{{ s | replace('World', 'There') }}", "Hello There"),
        ("{{ 'a1b22' | replace({'(\\\\d+)': '<$1>'}, regexp=true) }}", "a<1>b<22>"),
        (
            "{{ missing | default('d') }} {{ '' | default('d') }} {{ 'x' | default('d') }}",
            ("d d x"),
        ),
        ("{{ -3 | abs }}", "3"),
        ("{{ l | sort }} {{ l | rsort }} {{ l | reverse }}", "[1,2,3] [3,2,1] [2,1,3]"),
        ("{{ l | slice(1, 3) }} {{ s | slice(0, 5) }}", "[1,2] Hello"),
        (
            "{{ s | className }} {{ 1 | className }} {{ m | className }}",
            ("java.lang.String java.lang.Integer java.util.LinkedHashMap"),
        ),
        ("{{ s | abbreviate(8) }}", "Hello..."),
        ("{{ [1, 1, 2] | distinct }}", "[1,2]"),
        ("{{ m | merge({'c': 3}) }}", '{"b":2,"a":1,"c":3}'),
    ],
)
def test_filters(template: str, expected: str) -> None:
    assert r(template) == expected


def test_jq_returns_a_list_typed() -> None:
    assert render_typed("{{ j | jq('.list') }}", V) == [[1, 2]]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ range(1, 3) }}", "[1,2,3]"),
        ("{{ range(0, 10, 5) }}", "[0,5,10]"),
        ("{{ range(3, 1, -1) }}", "[3,2,1]"),
        ("{{ fromJson(j).key }}", "k"),
        ("{{ json(j).list[1] }}", "2"),
        ("{{ isNull(missing) }} {{ isNull(1) }}", "true false"),
        ("{{ max(1, 5, 2) }} {{ min([4, 2]) }}", "5 2"),
        ("{{ uuid() | length }}", "36"),
    ],
)
def test_functions(template: str, expected: str) -> None:
    assert r(template) == expected


def test_now_is_aware_utc_and_injectable() -> None:
    value = render_typed("{{ now() }}", {})
    assert isinstance(value, dt.datetime) and value.utcoffset() == dt.timedelta(0)
    paris = render_typed("{{ now(timeZone='Europe/Paris') }}", {})
    assert str(paris.tzinfo) == "Europe/Paris"
    fixed = {"now": lambda **_: NOW}
    assert render("{{ now() }}", {}, functions=fixed) == "2024-01-15T10:30:45.123Z"
    assert render("{{ now() | date('yyyy') }}", {}, functions=fixed) == "2024"


def test_render_function_is_recursive() -> None:
    variables = {"vars": {"a": "1", "b": "{{ vars.a }} > 2", "c": "{{ vars.b }} > 3"}}
    assert render("{{ render(vars.c) }}", variables) == "1 > 2 > 3"
    assert render("{{ render(vars.c, recursive=false) }}", variables) == "{{ vars.a }} > 2 > 3"
    assert render("{{ renderOnce(vars.c) }}", variables) == "{{ vars.a }} > 2 > 3"
    assert render("{{ render(42) }}", variables) == "42"


def test_render_function_stops_on_infinite_recursion() -> None:
    variables = {"x": "{{ '{{ x }}' }}{{ render(x) }}"}
    with pytest.raises(TemplateError):
        render("{{ render(x) }}", variables)


def test_current_each_output() -> None:
    variables = {
        "outputs": {"o": {"p1": {"p0": {"v": {"value": "deep"}}}}},
        "parents": [{"taskrun": {"value": "p0"}}, {"taskrun": {"value": "p1"}}],
        "taskrun": {"value": "v"},
    }
    assert render("{{ currentEachOutput(outputs.o).value }}", variables) == "deep"
    flat = {"outputs": {"o": {"1": {"value": "one"}}}, "taskrun": {"value": 1}}
    assert render("{{ currentEachOutput(outputs['o']).value }}", flat) == "one"


def test_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_MY_TOKEN", base64.b64encode(b"hunter2").decode())
    assert render("{{ secret('my_token') }}", {}) == "hunter2"
    with pytest.raises(TemplateError, match="secret 'other' not found"):
        render("{{ secret('other') }}", {})


def test_caller_functions_are_added_and_override() -> None:
    functions: dict[str, Callable[..., Any]] = {
        "errorLogs": lambda: [{"taskId": "t", "message": "m"}],
        "range": lambda *a: "x",
    }
    assert render("{{ errorLogs()[0].taskId }} {{ range(1) }}", {}, functions=functions) == "t x"
