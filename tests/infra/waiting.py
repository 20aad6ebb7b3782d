"""Waiting on a condition with a deadline: the only synchronisation tests and infra use."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import InfraError

T = TypeVar("T")


class WaitTimeout(InfraError):
    """The condition did not hold before the deadline."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Polls ``predicate`` until it returns a truthy value, and returns that value.

    Exceptions raised by ``predicate`` propagate at once (a predicate raises to say "this will
    never hold", e.g. the process died). On timeout raises ``WaitTimeout`` naming ``what`` and the
    last falsy value, plus ``diagnose()`` if given.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = predicate()
        if last:
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            extra = f"; {diagnose()}" if diagnose is not None else ""
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for {what} (last: {last!r}){extra}"
            )
        time.sleep(min(interval, remaining))


async def async_wait_until(
    predicate: Callable[[], T], timeout: float, what: str, *, interval: float = 0.1
) -> T:
    """``wait_until`` for coroutines: polls without blocking the event loop."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(min(interval, remaining))
