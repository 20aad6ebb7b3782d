"""Timers (pure): which wake-ups are due at ``now``, as ``Timer`` inputs.

The core asks to be called again at a date (retry delays, Pause, WaitFor, timeouts, SLA) by
leaving a wake-up in the execution's state (``ExecutorState.wakeups``, key -> date). A shell
scans the wake-ups it stores and sends the due ones to the execution as ``Timer`` inputs. A
timer's id derives from its key and date, so one sent twice is applied once, and the core
re-checks the state when it arrives (a stale timer changes nothing).

:class:`Sent` remembers the timers sent and not yet applied, so a scan every 100 ms does not
send the same timer again before ``resend_after`` (it is sent again only if its input was
lost, e.g. with a batch that was rolled back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from pydantic import Field

from common.models.base import WireModel
from common.models.messages import Timer

RESEND_AFTER = timedelta(seconds=5)
_REMEMBERED = 10_000


def timer(execution_id: str, key: str, when: datetime) -> Timer:
    return Timer(id=f"timer:{key}:{when.isoformat()}", execution_id=execution_id, key=key)


def due(execution_id: str, wakeups: Mapping[str, datetime], now: datetime) -> list[Timer]:
    """The ``Timer`` inputs of the wake-ups due at ``now``, earliest first."""
    ready = sorted((when, key) for key, when in wakeups.items() if when <= now)
    return [timer(execution_id, key, when) for when, key in ready]


def earliest(
    wakeups: Iterable[tuple[str, Mapping[str, datetime]]],
) -> tuple[datetime, Timer] | None:
    """The first wake-up of all (execution id, wake-ups) pairs, with its ``Timer`` input."""
    first = min(
        ((when, execution_id, key) for execution_id, keys in wakeups for key, when in keys.items()),
        default=None,
    )
    if first is None:
        return None
    when, execution_id, key = first
    return when, timer(execution_id, key, when)


class Sent(WireModel):
    """Timers sent and not applied yet: timer id -> when it was sent."""

    at: dict[str, datetime] = Field(default_factory=dict)


def to_send(
    sent: Sent,
    execution_id: str,
    wakeups: Mapping[str, datetime],
    now: datetime,
    resend_after: timedelta = RESEND_AFTER,
) -> list[Timer]:
    """The due timers of one execution that were not sent within ``resend_after``; they are
    recorded as sent at ``now``."""
    out = []
    for item in due(execution_id, wakeups, now):
        last = sent.at.get(item.id)
        if last is not None and now - last < resend_after:
            continue
        sent.at[item.id] = now
        out.append(item)
    if len(sent.at) > _REMEMBERED:
        sent.at = {k: v for k, v in sent.at.items() if now - v < 12 * resend_after}
    return out
