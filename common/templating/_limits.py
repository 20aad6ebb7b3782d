"""The resource limits of one render: sizes, item counts, loop iterations and time.

A template is user input run inside the executor and the workers, so every render is bounded:
``MAX_OUTPUT`` characters for any string it builds (``~``, ``*``, ``replace``, ``indent``,
``join``, JSON of a structure) and for its output, ``MAX_ITEMS`` items for any list it builds,
``MAX_ITERATIONS`` loop iterations and ``MAX_RENDER_SECONDS`` of time, checked at every loop
iteration and output chunk. ``start()`` opens the budget of a top-level render; a nested
``render()`` call spends from its caller's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from common.errors import TemplateError

MAX_OUTPUT = 10 * 1024 * 1024
MAX_ITEMS = 1_000_000
# JSON of a map or list (printing, ``json``, ``jq``, ``yaml``): above MAX_OUTPUT so that a large
# task output can still go through ``jq`` to a smaller result
MAX_JSON = 64 * 1024 * 1024
MAX_ITERATIONS = 1_000_000
MAX_RENDER_SECONDS = 5.0
MAX_NESTED_RENDERS = 20  # render() inside render() inside...

_state = threading.local()


def start() -> None:
    _state.iterations = 0
    _state.depth = 0
    _state.deadline = time.monotonic() + MAX_RENDER_SECONDS


def check_time() -> None:
    deadline = getattr(_state, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s (limit)")


def remaining(at_most: float) -> float:
    """Seconds left to the current render's deadline, at most ``at_most`` (a jq program or a
    regular expression runs with this deadline: ``common.bounded``)."""
    check_time()
    deadline = getattr(_state, "deadline", None)
    if deadline is None:
        return at_most
    return max(min(at_most, deadline - time.monotonic()), 0.001)


def spend(count: int) -> None:
    used = getattr(_state, "iterations", 0) + count
    _state.iterations = used
    if used > MAX_ITERATIONS:
        raise TemplateError(f"too many loop iterations (limit {MAX_ITERATIONS})")
    check_time()


@contextmanager
def nested() -> Iterator[None]:
    depth = getattr(_state, "depth", 0) + 1
    if depth > MAX_NESTED_RENDERS:
        raise TemplateError(f"function 'render': nested more than {MAX_NESTED_RENDERS} deep")
    _state.depth = depth
    try:
        yield
    finally:
        _state.depth = depth - 1


def check_text(size: int, what: str = "string") -> None:
    if size > MAX_OUTPUT:
        raise TemplateError(f"{what} too long (limit {MAX_OUTPUT} characters)")


def check_items(count: int, what: str = "list") -> None:
    if count > MAX_ITEMS:
        raise TemplateError(f"{what} too long (limit {MAX_ITEMS} items)")


class TimedList(list[Any]):
    """The items of a ``{% for %}``: iterating checks the render's time limit at every step."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            check_time()
            yield item
