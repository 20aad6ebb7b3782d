"""Rendering cost with a warm compile cache (printed, never asserted: machines differ)."""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from common.templating import render, render_condition, render_typed

VARIABLES = {
    "inputs": {"name": "World", "l": [1, 2, 3]},
    "outputs": {"t1": {"value": "x"}},
    "flow": {"id": "f", "namespace": "n"},
}


def _micros(call: Callable[[], Any]) -> float:
    number = 20_000
    best = min(timeit.repeat(call, number=number, repeat=5))
    return best / number * 1e6


def test_render_cost() -> None:
    assert render("Hello {{ inputs.name }}", VARIABLES) == "Hello World"
    figures = {
        "render('Hello {{ inputs.name }}')": _micros(
            lambda: render("Hello {{ inputs.name }}", VARIABLES)
        ),
        "render(?? + ~)": _micros(
            lambda: render("{{ outputs.t9.value ?? flow.namespace ~ '.' ~ flow.id }}", VARIABLES)
        ),
        "render_typed('{{ inputs.l }}')": _micros(
            lambda: render_typed("{{ inputs.l }}", VARIABLES)
        ),
        "render_condition('{{ outputs.t1.value == 'x' }}')": _micros(
            lambda: render_condition("{{ outputs.t1.value == 'x' }}", VARIABLES)
        ),
        "render('plain text')": _micros(lambda: render("plain text", VARIABLES)),
    }
    for name, micros in figures.items():
        print(f"{name}: {micros:.2f} µs/render")
