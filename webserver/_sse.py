"""Server-sent events fed by a queue topic, without blocking the event loop.

A live view subscribes with a unique consumer group from the newest record and never commits:
it sees what comes next and leaves no trace. Polls run in worker threads (``anyio.to_thread``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread

from common.ids import new_id
from common.queue.base import Queue, Record, Subscription

POLL_SECONDS = 1.0


def sse_event(data: Any, event: str | None = None) -> str:
    """One ``data: {json}`` event (Kestra sends unnamed events)."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


async def subscribe_live(queue: Queue, topic: str, purpose: str) -> Subscription:
    group = f"live-{purpose}-{new_id()}"
    return await anyio.to_thread.run_sync(lambda: queue.subscribe([topic], group, from_latest=True))


KEEPALIVE = ": keepalive\n\n"


async def records_for_key(subscription: Subscription, key: str) -> AsyncIterator[Record | None]:
    """Records of ``key`` as they arrive; yields None after an idle poll.

    On None the caller sends ``KEEPALIVE`` (so a gone client is noticed on the next write) and
    may decide to stop. The caller closes the subscription.
    """
    while True:
        records = await anyio.to_thread.run_sync(
            lambda: subscription.poll(max_records=200, timeout=POLL_SECONDS)
        )
        matching = [r for r in records if r.key == key and r.value is not None]
        for record in matching:
            yield record
        if not matching:
            yield None


async def close_quietly(subscription: Subscription) -> None:
    await anyio.to_thread.run_sync(subscription.close)
