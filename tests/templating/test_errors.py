"""Every failure is a TemplateError with a message naming the expression and the variable."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import TemplateError
from common.templating import render, render_typed

V: dict[str, Any] = {
    "outputs": {"t1": {"value": "x"}, "id-with-dash": {"v": 1}},
    "inputs": {"l": [1, 2], "n": 3, "s": "text", "none": None},
}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ outputs.foo.value }}",
            "Unable to render \"{{ outputs.foo.value }}\": variable 'foo' is undefined in outputs",
        ),
        ("{{ missingVar }}", "variable 'missingVar' is undefined"),
        ("{{ outputs.t1.other }}", "variable 'other' is undefined in outputs.t1"),
        ("{{ outputs['id-with-dash'].w }}", "variable 'w' is undefined in outputs['id-with-dash']"),
        ("{{ inputs.l[7] }}", "index 7 is out of range in inputs.l (size 2)"),
        ("{{ inputs.none.x }}", "cannot read 'x' of a null value"),
        ("{{ a ?? b }}", "variable 'b' is undefined"),
        ("{{ nope == 2 }}", "variable 'nope' is undefined"),
        ("{{ nope | upper }}", "variable 'nope' is undefined"),
        ("{% for x in nope %}{% endfor %}", "variable 'nope' is undefined"),
        ("{% if nope %}{% endif %}", "variable 'nope' is undefined"),
        ("{{ nope ~ 'x' }}", "variable 'nope' is undefined"),
        ("{{ 1 + nope }}", "variable 'nope' is undefined"),
        ("{{ unknownFunction() }}", "function 'unknownFunction' is undefined"),
        ("{{ true ? nope : 1 }}", "variable 'nope' is undefined"),
        ("{{ x | nofilter }}", "unknown filter 'nofilter'"),
        ("{{ x is notatest }}", "unknown test 'notatest'"),
        ("{{ 1 + }}", "unexpected end of expression"),
        ("{{ (1 }}", "unexpected '}'"),
        ("{{ 'abc }}", "unclosed string literal"),
        ("{{ }}", "empty expression"),
        ("{{ a {% if %} }}", "unexpected '{%' inside an expression"),
        ("{% if true %}x", "unclosed '{% if %}'"),
        ("{% endif %}", "unexpected '{% endif %}'"),
        ("{% include 'x' %}", "unsupported tag 'include'"),
        ("{{ inputs.s.upper() }}", "method calls are not supported"),
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ 'a' < 1 }}", "TypeError"),
        ("{{ '{bad' | fromJson }}", "invalid JSON"),
        ("{{ 'x' | jq('.[') }}", "invalid jq expression"),
        ("{{ 'abc' | date('yyyy') }}", "cannot parse 'abc' as a date"),
        ("{{ secret('DOES_NOT_EXIST_X') }}", "secret 'DOES_NOT_EXIST_X' not found"),
    ],
)
def test_error_messages(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(template, V)
    assert message in str(info.value)
    assert str(info.value).startswith("Unable to render")


@pytest.mark.parametrize(
    "template",
    [
        "{{ inputs.__class__ }}",
        "{{ inputs['__class__'] }}",
        "{{ inputs._private }}",
        "{{ __import__('os') }}",
        "{{ inputs.s['__class__'] }}",
        "{{ range.__globals__ }}",
    ],
)
def test_sandbox_blocks_private_access(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, V)


def test_object_attribute_access_is_sandboxed() -> None:
    class Thing:
        visible = "ok"

        def method(self) -> str:
            return "called"

    assert render("{{ t.visible }}", {"t": Thing()}) == "ok"
    with pytest.raises(TemplateError, match="does not exist"):
        render("{{ t.method }}", {"t": Thing()})


def test_resource_limits() -> None:
    with pytest.raises(TemplateError, match="exceed the limit"):
        render("{{ range(1, 1000000) }}", {})
    with pytest.raises(TemplateError, match="too large"):
        render("{{ 'x' * 100000000 }}", {})
    with pytest.raises(TemplateError, match="rendered output exceeds"):
        render(
            "{% for i in range(1, 100000) %}{{ s }}{% endfor %}",
            {"s": "x" * 200},
        )
    with pytest.raises(TemplateError, match="too many loop iterations"):
        render(
            "{% for i in range(1, 100000) %}{% for j in range(1, 100000) %}"
            "{% endfor %}{% endfor %}",
            {},
        )


def test_exceptions_from_caller_functions_become_template_errors() -> None:
    def boom() -> None:
        raise RuntimeError("kaput")

    with pytest.raises(TemplateError, match="RuntimeError: kaput"):
        render("{{ boom() }}", {}, functions={"boom": boom})
    with pytest.raises(TemplateError, match="kaput"):
        render_typed("{{ boom() }}", {}, functions={"boom": boom})


def test_long_template_error_names_the_failing_expression() -> None:
    template = "x" * 300 + "{{ inputs.n }}{{ outputs.zzz.value }}"
    with pytest.raises(TemplateError) as info:
        render(template, V)
    assert str(info.value).startswith('Unable to render "{{ outputs.zzz.value }}"')


_PIECES = st.sampled_from(
    [
        "a",
        "inputs",
        ".",
        "l",
        "[",
        "]",
        "(",
        ")",
        "{",
        "}",
        "'s'",
        '"d"',
        "1",
        "2.5",
        "??",
        "?",
        ":",
        "~",
        "+",
        "-",
        "*",
        "/",
        "%",
        "|",
        "upper",
        "json",
        "is",
        "not",
        "defined",
        "null",
        "and",
        "or",
        "==",
        "equals",
        "..",
        ",",
        "=",
        "range",
        "true",
        "none",
        " ",
        "{{",
        "}}",
        "{%",
        "%}",
        "for",
        "in",
        "endfor",
        "if",
        "endif",
        "-",
        "#",
        "\\",
        "'",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=12))
def test_fuzzed_templates_only_raise_template_errors(pieces: list[str]) -> None:
    for template in ("{{ " + " ".join(pieces) + " }}", "".join(pieces), " ".join(pieces)):
        try:
            result = render(template, V)
        except TemplateError:
            continue
        assert isinstance(result, str)
