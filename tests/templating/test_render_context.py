"""``RenderContext``: the functions of a render that must depend only on its arguments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.errors import TemplateError
from common.templating import RenderContext, render

AT = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
RANDOM = "{{ uuid() }} {{ randomInt(0, 1000000000) }} {{ uuid() }}"


def _render(template: str, context: RenderContext) -> str:
    return render(template, {}, functions=context.functions())


def test_now_is_the_given_moment() -> None:
    context = RenderContext(AT, "seed")
    assert _render("{{ now() }}", context) == "2024-03-01T12:30:00.000Z"
    assert _render("{{ now(timeZone='Asia/Tokyo') }}", context) == "2024-03-01T21:30:00.000+09:00"
    naive = RenderContext(AT.replace(tzinfo=None), "seed")
    assert _render("{{ now() | timestamp }}", naive) == str(int(AT.timestamp()))


def test_random_functions_follow_the_seed() -> None:
    first = _render(RANDOM, RenderContext(AT, "execution", "task run", "{{ uuid() }}"))
    again = _render(RANDOM, RenderContext(AT, "execution", "task run", "{{ uuid() }}"))
    other = _render(RANDOM, RenderContext(AT, "execution", "other task run", "{{ uuid() }}"))
    assert first == again
    assert first != other
    one, number, two = first.split(" ")
    assert one != two  # successive draws of one render differ
    assert 0 <= int(number) < 1_000_000_000


def test_one_context_draws_on_across_renders() -> None:
    context = RenderContext(AT, "seed")
    assert _render("{{ uuid() }}", context) != _render("{{ uuid() }}", context)


@pytest.mark.parametrize(
    "template",
    [
        "{{ secret('TOKEN') }}",
        "{{ read('lanner:///a/b.txt') }}",
        "{{ fileExists('lanner:///a/b.txt') }}",
        "{{ fileSize('lanner:///a/b.txt') }}",
    ],
)
def test_worker_functions_fail_with_a_clear_message(template: str) -> None:
    name = template[3 : template.index("(")]
    with pytest.raises(TemplateError, match=rf"function '{name}\(\)' is only available in the "):
        _render(template, RenderContext(AT, "seed"))


def test_without_a_context_the_worker_functions_are_real() -> None:
    rendered = render("{{ now() | timestampMicro }} {{ uuid() }}", {})
    again = render("{{ now() | timestampMicro }} {{ uuid() }}", {})
    assert rendered != again
    assert int(rendered.split(" ")[0]) > int(AT.timestamp() * 1_000_000)
