"""Live feeds: one consumer of a topic per webserver process, fanned out to every open stream.

A follow stream (SSE) registers a ``Listener`` for one key (an execution id) and receives the
records of that key as the feed's single subscription reads them, so a thousand viewers cost one
consumer, not a thousand consumer group members. The subscription is a group of its own
(``live-<topic>-<uuid>``), read from the newest record (``from_latest``), never committed: it
sees what comes next and leaves no trace.

Order of a stream's start: the feed is ready (it holds every partition, so nothing written
from now on is skipped), then the listener is registered, then the stored state is read. A
record written between the stored read and the first live one is therefore never lost; at worst
it is seen twice, which the stream's ``sequence`` check drops.

The feed thread never blocks on a listener: records are handed to each stream's event loop
(``call_soon_threadsafe``) into a bounded buffer; a stream that does not keep up is ended (its
client reconnects and starts again from the stored state) rather than holding memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

from common.queue.base import Queue, Record, Subscription, TopicPartition

log = logging.getLogger("lanner.webserver.live")

POLL_SECONDS = 0.5
READY_SECONDS = 60.0
BUFFER = 1000  # records a stream may have waiting before it is ended as too slow


class FeedClosed(Exception):
    """The feed stopped (the webserver stops, or the queue failed): the stream ends."""


class Listener:
    """The records of one key, for one stream; ``close`` unregisters it."""

    def __init__(self, feed: LiveFeed, key: str | None, loop: asyncio.AbstractEventLoop) -> None:
        self.feed = feed
        self.key = key
        self._loop = loop
        self._buffer: asyncio.Queue[Record | None] = asyncio.Queue()
        self._ended = False

    def _deliver(self, record: Record | None) -> None:
        # on the stream's event loop
        if self._ended:
            return
        if record is None or self._buffer.qsize() >= BUFFER:
            self._ended = True
            self._buffer.put_nowait(None)
            return
        self._buffer.put_nowait(record)

    def push(self, record: Record | None) -> None:
        """From the feed thread: hand ``record`` (None: the feed ended) to the stream."""
        try:
            self._loop.call_soon_threadsafe(self._deliver, record)
        except RuntimeError:  # the stream's loop is closed: the stream is gone
            self.feed.unregister(self)

    async def next(self, timeout: float) -> Record | None:
        """The next record of the key, or None after ``timeout`` seconds without one.

        Raises ``FeedClosed`` once the feed stopped or this stream fell too far behind.
        """
        try:
            record = await asyncio.wait_for(self._buffer.get(), timeout)
        except TimeoutError:
            return None
        if record is None:
            raise FeedClosed(f"the live feed of {self.feed.topic} ended")
        return record

    def close(self) -> None:
        self.feed.unregister(self)


class LiveFeed:
    """One subscription to ``topic`` shared by every stream of this process.

    Started on first use (``ensure_ready``) or by the component that serves the app; ``stop``
    ends every open stream.
    """

    def __init__(self, queue: Queue, topic: str, *, poll_timeout: float = POLL_SECONDS) -> None:
        self.queue = queue
        self.topic = topic
        self.poll_timeout = poll_timeout
        self.group = f"live-{topic}-{uuid.uuid4().hex}"
        self._listeners: dict[str | None, set[Listener]] = {}  # None: listeners of every key
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: set[TopicPartition] = set()
        self._wanted: int | None = None
        self.failure: str | None = None
        self.consumers = 0  # subscriptions open now: 0 or 1, whatever the number of streams

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._ready.clear()
            self._held.clear()
            self.failure = None
            self._thread = threading.Thread(
                target=self._run, name=f"lanner-live-{self.topic}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._thread = None

    def not_ready(self) -> str | None:
        """None once the feed holds every partition of its topic, else why not."""
        if self.failure is not None:
            return f"live feed of {self.topic}: {self.failure}"
        if self._thread is None:
            return f"live feed of {self.topic}: not started"
        if not self._ready.is_set():
            held = len(self._held)
            wanted = "?" if self._wanted is None else str(self._wanted)
            return f"live feed of {self.topic}: {held}/{wanted} partitions assigned"
        return None

    def wait_ready(self, timeout: float = READY_SECONDS) -> bool:
        """Blocks until the feed holds every partition (True) or failed / timed out (False)."""
        self._ready.wait(timeout)
        return self.not_ready() is None

    async def ensure_ready(self, timeout: float = READY_SECONDS) -> None:
        """Starts the feed if needed and waits until it holds every partition."""
        self.start()
        if self._ready.is_set():
            return
        ready = await asyncio.to_thread(self._ready.wait, timeout)
        if not ready or self.failure is not None:
            raise FeedClosed(self.not_ready() or f"live feed of {self.topic} stopped")

    # ------------------------------------------------------------------ listeners
    def listen(self, key: str | None) -> Listener:
        """A listener of ``key`` (None: of every record) on the running event loop (register
        before reading the stored state: see the module docstring)."""
        listener = Listener(self, key, asyncio.get_running_loop())
        with self._lock:
            self._listeners.setdefault(key, set()).add(listener)
        return listener

    def unregister(self, listener: Listener) -> None:
        with self._lock:
            listeners = self._listeners.get(listener.key)
            if listeners is not None:
                listeners.discard(listener)
                if not listeners:
                    del self._listeners[listener.key]

    @property
    def streams(self) -> int:
        with self._lock:
            return sum(len(listeners) for listeners in self._listeners.values())

    # ------------------------------------------------------------------ the feed thread
    def _on_assigned(self, partitions: list[TopicPartition]) -> None:
        self._held.update(partitions)
        log.info(
            "live feed of %s: holds %d/%s partitions", self.topic, len(self._held), self._wanted
        )
        if self._wanted is not None and len(self._held) >= self._wanted:
            self._ready.set()

    def _on_revoked(self, partitions: list[TopicPartition]) -> None:
        # (a broker outage can cost the group its members) new streams wait for the partitions
        # to come back; open streams keep their listeners and resume once they do
        self._held.difference_update(partitions)
        log.info("live feed of %s: lost %d partitions", self.topic, len(partitions))
        if self.failure is None:
            self._ready.clear()

    def _run(self) -> None:
        subscription: Subscription | None = None
        try:
            self._wanted = self.queue.partitions(self.topic)
            subscription = self.queue.subscribe(
                [self.topic],
                self.group,
                from_latest=True,
                on_assigned=self._on_assigned,
                on_revoked=self._on_revoked,
            )
            self.consumers = 1
            while not self._stop.is_set():
                records = subscription.poll(max_records=500, timeout=self.poll_timeout)
                if records:
                    self._dispatch(records)
        except Exception as exc:  # noqa: BLE001 - the feed ends, its streams end, it is reported
            self.failure = f"{type(exc).__name__}: {exc}"
            log.exception("live feed of %s failed; open streams end", self.topic)
        finally:
            if subscription is not None:
                try:
                    subscription.close()
                except Exception:  # noqa: BLE001 - closing a failed queue
                    log.warning("live feed of %s: closing its subscription failed", self.topic)
            self.consumers = 0
            if self.failure is None:
                self.failure = "stopped"
            self._ready.set()  # wake whoever waits: ``failure`` says why
            self._end_all()

    def _dispatch(self, records: list[Record]) -> None:
        with self._lock:
            every = self._listeners.get(None, ())
            targets = [
                (listener, record)
                for record in records
                if record.key is not None
                for listener in (*self._listeners.get(record.key, ()), *every)
            ]
        for listener, record in targets:
            listener.push(record)

    def _end_all(self) -> None:
        with self._lock:
            listeners = [listener for group in self._listeners.values() for listener in group]
            self._listeners.clear()
        for listener in listeners:
            listener.push(None)


def live_feeds(queue: Queue, topics: tuple[str, ...]) -> dict[str, LiveFeed]:
    return {topic: LiveFeed(queue, topic) for topic in topics}
