"""Which triggers a user disabled through the API, as the ``triggers`` topic tells.

The executor evaluates Flow triggers (``executor.flow_triggers``) but the API's enable/disable
travels as a request to the scheduler, which stores the trigger's state (``disabled``) on the
compacted ``triggers`` topic. ``DisabledTriggers`` reads those states so the executor skips a
disabled Flow trigger. Requests (``request:`` keys) are skipped; a tombstone re-enables.

The embedded executor reads with a committed group and keeps the set in its own table (the
SQLite queue does not compact: a state read once may be purged later); on Kafka the reader
starts from the topic's beginning in a group of its own and never commits (compaction keeps
the latest state of each trigger).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from common.models.trigger import TriggerState, is_request_key
from common.queue.base import TRIGGERS, Queue, Record

log = logging.getLogger("lanner.triggers")


class DisabledTriggers:
    """``refresh()`` reads what is new; ``uids()`` are the disabled ones. Thread-safe."""

    def __init__(
        self,
        queue: Queue,
        group: str,
        *,
        commit: bool,
        initial: Iterable[str] = (),
        owns_queue: bool = False,
    ) -> None:
        self._queue = queue if owns_queue else None  # closed by ``close``
        self._subscription = queue.subscribe([TRIGGERS], group)
        self._commit = commit
        self._lock = threading.Lock()
        self._disabled: set[str] = set(initial)

    def refresh(self, timeout: float = 0) -> bool:
        """Read the new records; True when any was read (the set may have changed: a caller
        that stores it stores it again, so a store rolled back after a first read is
        rewritten). With ``commit``, call ``committed()`` once the set is stored."""
        read = False
        while True:
            records = self._subscription.poll(max_records=1000, timeout=timeout)
            if not records:
                return read
            timeout = 0
            read = True
            self._apply(records)
            if self._commit:
                self._pending = [*getattr(self, "_pending", []), *records]

    def committed(self) -> None:
        pending: list[Record] = getattr(self, "_pending", [])
        if pending:
            self._subscription.commit(pending)
            self._pending = []

    def _apply(self, records: list[Record]) -> bool:
        changed = False
        with self._lock:
            for record in records:
                if record.key is None or is_request_key(record.key):
                    continue
                disabled = False
                if record.value is not None:
                    try:
                        disabled = TriggerState.model_validate_json(record.value).disabled
                    except ValueError:
                        continue
                if disabled and record.key not in self._disabled:
                    self._disabled.add(record.key)
                    changed = True
                elif not disabled and record.key in self._disabled:
                    self._disabled.discard(record.key)
                    changed = True
        return changed

    def start_thread(self, timeout: float = 0.5) -> None:
        """Keep reading on a daemon thread until ``close`` (Kafka: without a committed group
        nothing else needs the reader's thread)."""
        self._stopping = threading.Event()

        def run() -> None:
            while not self._stopping.is_set():
                try:
                    self.refresh(timeout=timeout)
                except Exception:  # noqa: BLE001 - brokers away: try again
                    log.exception("reading the trigger states failed")
                    self._stopping.wait(1.0)

        self._thread = threading.Thread(target=run, name="lanner-trigger-states", daemon=True)
        self._thread.start()

    def uids(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._disabled)

    def close(self) -> None:
        stopping: threading.Event | None = getattr(self, "_stopping", None)
        if stopping is not None:
            stopping.set()
            self._thread.join(5.0)
        self._subscription.close()
        if self._queue is not None:
            self._queue.close()
