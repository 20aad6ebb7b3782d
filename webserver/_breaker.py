"""A circuit breaker for the writes the webserver makes to the repository only as a convenience.

On Kafka the repository is a copy the indexer fills from the topics; the webserver still
stores a new execution's CREATED snapshot so that a GET right after the creation finds it. That
write must never hold a creation while Elasticsearch is down: after a failure it is skipped for
``pause`` seconds, then a single call tries again (the others keep skipping while it waits, so
a frozen node costs one request timeout per pause, not one per creation).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("lanner.webserver")

PAUSE_SECONDS = 5.0


class Breaker:
    """``call(fn)`` runs ``fn`` unless a recent failure says it would fail too."""

    def __init__(self, what: str, pause: float = PAUSE_SECONDS) -> None:
        self.what = what
        self.pause = pause
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._probing = False
        self.skipped = 0

    @property
    def open(self) -> bool:
        """True while calls are skipped."""
        return self._probing or time.monotonic() < self._skip_until

    def call(self, fn: Callable[[], object]) -> bool:
        """Runs ``fn``; False when it was skipped or failed (the failure is logged)."""
        with self._lock:
            if self._probing or time.monotonic() < self._skip_until:
                self.skipped += 1
                return False
            probing = self._skip_until > 0.0
            self._probing = probing  # one call tries again, the others skip meanwhile
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - any failure: skip for a while
            with self._lock:
                self._probing = False
                self._skip_until = time.monotonic() + self.pause
            log.warning("%s skipped for %.0f s: %s", self.what, self.pause, exc)
            return False
        with self._lock:
            self._probing = False
            if probing:
                log.info("%s works again", self.what)
            self._skip_until = 0.0
        return True
