"""The executor's producer buffer: a flush returns only once every message put was handed to
the Kafka producer, however slow each one is (the commit that follows must not pass an event
whose table changes are still in the buffer)."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from executor.faust_transport import SendAllBuffer


class SlowChannel:
    """Publishes each message after ``delay`` seconds: a publish slower than the 0.1 s Faust's
    own flush waits per message is the behaviour under test, not a synchronisation."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.published: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(self.delay)
        self.published.append(fut.number)


def _message(channel: SlowChannel, number: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(channel=channel), number=number)


async def _flushed(buffer_class: type[ProducerBuffer], count: int) -> list[int]:
    channel = SlowChannel(delay=0.25)
    buffer = buffer_class()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    try:
        for number in range(count):
            buffer.put(_message(channel, number))  # type: ignore[arg-type]
        await buffer.flush()
        return list(channel.published)
    finally:
        # Faust's buffer refuses to stop with messages left ("Cannot flush: Producer not
        # Running"): only the returned list matters here
        with contextlib.suppress(RuntimeError):
            await buffer.stop()


def test_a_flush_returns_once_every_slow_message_is_published() -> None:
    assert asyncio.run(_flushed(SendAllBuffer, 3)) == [0, 1, 2]


def test_fausts_own_flush_returns_before_its_slow_messages_are_published() -> None:
    """Why the executor has its own buffer: the defect it replaces is still there."""
    assert asyncio.run(_flushed(ProducerBuffer, 3)) != [0, 1, 2]


def test_a_stopping_buffer_sends_what_is_left_itself() -> None:
    async def scenario() -> list[int]:
        channel = SlowChannel(delay=0.0)
        buffer = SendAllBuffer()
        buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
        for number in range(3):  # never started: no sending task
            buffer.put(_message(channel, number))  # type: ignore[arg-type]
        await buffer.stop()  # on_stop flushes
        return channel.published

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_a_flush_waiting_when_the_buffer_stops_sends_what_is_left_itself() -> None:
    async def scenario() -> list[int]:
        channel = SlowChannel(delay=0.25)
        buffer = SendAllBuffer()
        buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
        await buffer.start()
        for number in range(3):
            buffer.put(_message(channel, number))  # type: ignore[arg-type]
        flushing = asyncio.ensure_future(buffer.flush())
        await buffer.stop()  # the sending task ends after the message in its hands
        await flushing
        return sorted(channel.published)

    assert asyncio.run(scenario()) == [0, 1, 2]
