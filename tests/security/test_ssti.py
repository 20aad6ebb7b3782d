"""The SSTI corpus (``ssti_payloads.txt`` plus generated bombs) through the real template engine.

Every payload gives a ``TemplateError`` with a bounded message, or a bounded harmless string;
never a Python object, the process environment, a file's content, another exception type, and
never a process high-water mark (max RSS) more than ``PEAK_BYTES`` above the one before the
corpus (tracemalloc would be exact per payload but slows the loop payloads fivefold). A hang
would be caught by the render time limit (``common.templating._limits``), and pytest-timeout
stops the test if that limit itself failed. Kestra's SSTI stance: templates have no Java method
calls (Pebble's ``allowUnsafeMethods`` off, kestra-io/kestra ``VariableRenderer``);
PayloadsAllTheThings "Server Side Template Injection" for the Jinja2 and Pebble payloads.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import TemplateError
from common.templating import render, render_typed
from common.templating._limits import MAX_OUTPUT

CORPUS_FILE = Path(__file__).with_name("ssti_payloads.txt")
CANARY_ENV = "LANNER_SSTI_CANARY"
CANARY = "ssti-canary-5f1c0e"
PEAK_BYTES = 512 * 1024 * 1024

# what a leak looks like; no payload contains these, so an echo of the payload never matches
INTERNALS = (
    "<class '",
    "<function ",
    "<built-in",
    "<module '",
    "<bound method",
    "<method-wrapper",
    " object at 0x",
    "jinja2.",
    "Traceback (most recent",
    'File "/',
    "site-packages",
    "'__name__': 'builtins'",
    "root:x:0:0",
    CANARY,
)


def _laughs(kind: str, depth: int = 9) -> str:
    if kind == "yaml":
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth)]
        return "{{ fromYaml('" + "\\n".join(lines) + "') | json | length }}"
    return "{{ fromJson('" + "[" * 100_000 + "') }}"


def _corpus() -> list[str]:
    lines = CORPUS_FILE.read_text(encoding="utf-8").splitlines()
    payloads = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    payloads += [
        "{{ " + "(" * 5_000 + "1" + ")" * 5_000 + " }}",
        "{{ " + "(" * 150 + "1" + ")" * 150 + " }}",
        "{{ " + "[" * 5_000 + "1" + "]" * 5_000 + " }}",
        "{{ " + "{'a': " * 2_000 + "1" + "}" * 2_000 + " }}",
        "{{ " + "not " * 5_000 + "true }}",
        "{{ " + "-" * 5_000 + "1 }}",
        "{{ 1" + " + 1" * 5_000 + " }}",
        "{{ 'a'" + " ~ 'a'" * 5_000 + " }}",
        "{% if true %}" * 1_000 + "x" + "{% endif %}" * 1_000,
        "{% for i in [1] %}" * 1_000 + "x" + "{% endfor %}" * 1_000,
        "{{ inputs" + ".a" * 5_000 + " }}",
        "{{ inputs" + "['a']" * 5_000 + " }}",
        "{{ 1 | abs" + " | abs" * 5_000 + " }}",
        "{{ " + "render(" * 100 + "'x'" + ")" * 100 + " }}",
        "{{ 'x' }}" * 5_000,
        "x" * 1_000_000 + "{{ 1 }}",
        "{{ '" + "a" * 1_000_000 + "' }}",
        _laughs("yaml"),
        _laughs("json"),
    ]
    return payloads


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


CORPUS = _corpus()
BASELINE_RSS = _max_rss()
COUNTS: dict[str, int] = {"payloads": len(CORPUS), "errors": 0, "strings": 0}


@pytest.fixture(autouse=True, scope="module")
def _canary() -> Iterator[None]:
    """A variable in the environment that no template may ever read."""
    os.environ[CANARY_ENV] = CANARY
    yield
    os.environ.pop(CANARY_ENV, None)


def _variables() -> dict[str, object]:
    return {
        "inputs": {"name": "world", "list": [1, 2], "_private": "p"},
        "outputs": {"t1": {"value": "v"}},
        "flow": {"id": "f", "namespace": "company.team"},
        "execution": {"id": "e1"},
        "vars": {},
        "envs": {},
        "globals": {},
    }


def _shown(template: str) -> str:
    return template if len(template) <= 80 else template[:80] + "..."


def _check_text(text: str, template: str) -> None:
    for marker in INTERNALS:
        assert marker not in text, f"{_shown(template)!r} revealed {marker!r}: {text[:300]!r}"


def test_the_corpus_never_names_an_internals_marker() -> None:
    for payload in CORPUS:
        _check_text(payload, payload)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("index", range(len(CORPUS)), ids=lambda i: f"p{i:03d}")
def test_payload_is_refused_or_harmless(index: int) -> None:
    template = CORPUS[index]
    try:
        output = render(template, _variables())
    except TemplateError as exc:
        output = None
        message = exc.message
    grown = _max_rss() - BASELINE_RSS
    assert grown < PEAK_BYTES, f"{_shown(template)!r}: max RSS grew by {grown} bytes"
    if output is None:
        COUNTS["errors"] += 1
        assert message.startswith("Unable to render"), message[:300]
        # the message echoes at most 200 characters of the template, then the reason
        assert len(message) < 2_000, f"{_shown(template)!r}: message of {len(message)} chars"
        _check_text(message, template)
    else:
        COUNTS["strings"] += 1
        assert len(output) <= MAX_OUTPUT
        _check_text(output, template)


@pytest.mark.parametrize(
    "template",
    [
        "{{ inputs }}",
        "{{ self }}",
        "{{ range }}",
        "{{ now }}",
        "{{ inputs.__class__ }}",
        "{{ cycler }}",
        "{{ inputs|attr('__class__') }}",
    ],
)
def test_typed_renders_never_return_python_objects(template: str) -> None:
    """``render_typed`` hands the value itself to a task property: only data may come out."""
    try:
        value = render_typed(template, _variables())
    except TemplateError:
        return
    assert isinstance(value, dict | list | str | int | float | bool | type(None)), type(value)
    _check_text(repr(value), template)


@pytest.mark.parametrize(
    ("template", "where"),
    [
        ("{% for i in range(1, 10) %}{{ i }}{% endfor %}", "a loop step"),
        ("{% for x in range(1, 10) | distinct %}{% endfor %}", "a loop over a filter's result"),
        ("{{ 'a' }}{{ 'b' }}", "an output chunk"),
        ("{{ render('{% for i in [1, 2] %}{% endfor %}') }}", "a nested render"),
    ],
)
def test_the_render_time_limit_stops_a_render(
    template: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time budget is checked at every loop step and output chunk: with a budget of zero
    seconds every render that reaches such a check stops with a clean error (no clock race:
    the deadline has passed before the first check)."""
    from common.templating import _limits

    monkeypatch.setattr(_limits, "MAX_RENDER_SECONDS", -1.0)
    with pytest.raises(TemplateError, match="rendering took longer than"):
        render(template, {})


def test_nested_render_depth_is_bounded() -> None:
    with pytest.raises(TemplateError, match="nested"):
        render("{% set t = '{{ render(t) }}' %}{{ render(t) }}", {})


# Programs that never end (or not for hours): jq runs in C and Python's ``re`` backtracks in C,
# neither checks the render's deadline, so they run in a helper process killed at its deadline
# (``common.bounded``); RE2 takes a backtracking-prone pattern without backreferences in linear
# time. Each pair: the template, and what the refusal names (None: it renders, RE2 is linear).
HANGS: list[tuple[str, str | None]] = [
    ("{{ {} | jq('[range(1e12)] | length') }}", "filter 'jq'"),
    ("{{ {} | jq('def f: f; f') }}", "filter 'jq'"),
    ("{{ {} | jq('last(range(1e15))') }}", "filter 'jq'"),
    ("{{ {} | jq('def f: [f, f]; f') }}", "filter 'jq'"),
    ("{{ '" + "a" * 64 + "b' | replace('(a+)+\\\\1$', 'x', regexp=true) }}", "filter 'replace'"),
    ("{{ '" + "a" * 64 + "!' | replace('(?=(a|aa)+$)', 'x', regexp=true) }}", "filter 'replace'"),
    ("{{ '" + "a" * 5000 + "b' | replace('(a+)+$', 'x', regexp=true) | length }}", None),
    ("{{ '" + "a" * 5000 + "b' | replace('(a|aa)*c', 'x', regexp=true) | length }}", None),
    ("{{ '" + "x" * 5000 + "' | replace('(x+x+)+y', 'z', regexp=true) | length }}", None),
]
COUNTS["hangs"] = len(HANGS)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("template", "named"), HANGS, ids=[f"h{i:02d}" for i in range(len(HANGS))])
def test_a_program_that_never_ends_is_cut(
    template: str, named: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the helper process these hang the test (pytest-timeout fails it): in the
    executor or a worker they would hang a thread for ever. The limits are lowered only to keep
    the test short; the error names the function and the limit."""
    from common import bounded

    monkeypatch.setattr(bounded, "MAX_JQ_SECONDS", 0.3)
    monkeypatch.setattr(bounded, "MAX_REGEX_SECONDS", 0.3)
    if named is None:
        assert int(render(template, _variables())) > 0
    else:
        with pytest.raises(TemplateError) as caught:
            render(template, _variables())
        message = caught.value.message
        assert message.startswith("Unable to render") and named in message, message[:300]
        assert "did not finish within 0.3 s (limit)" in message or "out of memory" in message
        _check_text(message, template)


def test_jq_works_after_helpers_were_killed() -> None:
    """Runs after the cuts above: a killed helper was replaced by a fresh one."""
    assert render("{{ {'a': [1, 2]} | jq('.a | add') | first }}", {}) == "3"


def test_jq_and_regex_helpers_see_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper process starts with an empty environment (and jq's env is shadowed anyway)."""
    from common import bounded

    monkeypatch.setenv(CANARY_ENV, CANARY)
    assert CANARY not in str(bounded.run_jq("$ENV, env", "null"))
