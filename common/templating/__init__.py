"""Kestra (Pebble) compatible templating on Jinja2's sandbox.

``render`` turns a template into text exactly as Kestra prints it, ``render_typed`` returns the
Python value of a template that is a single ``{{ expression }}``, ``render_object`` renders every
string (keys too) of a nested structure, and ``render_condition`` applies Kestra's truthiness
(``is_true``). Every failure raises :class:`common.errors.TemplateError`. ``RenderContext`` gives
the functions of a render that must be pure (the executor's core): a given ``now``, a seeded
``uuid()``/``randomInt()``, and no ``secret()`` or file functions.
"""

from __future__ import annotations

from ._engine import check_syntax as check_syntax
from ._engine import is_true as is_true
from ._engine import render as render
from ._engine import render_condition as render_condition
from ._engine import render_object as render_object
from ._engine import render_typed as render_typed
from ._render_context import RenderContext as RenderContext

__all__ = [
    "RenderContext",
    "check_syntax",
    "is_true",
    "render",
    "render_condition",
    "render_object",
    "render_typed",
]
