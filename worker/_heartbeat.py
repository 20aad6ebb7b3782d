"""Periodic ``WorkerHeartbeat`` records on the ``workers`` topic (key: worker id)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from common.models.messages import WorkerHeartbeat
from common.queue.base import WORKERS, Queue

log = logging.getLogger("lanner.worker")
Status = Literal["UP", "TERMINATING", "DEAD"]


class Heartbeat:
    def __init__(
        self,
        queue: Queue,
        *,
        worker_id: str,
        group: str | None,
        threads: int,
        interval: float,
        running: Callable[[], int],
        cut_off_after: float | None = None,
        on_cut_off: Callable[[float], None] | None = None,
    ) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.group = group
        self.threads = threads
        self.interval = interval
        self.running = running
        self.cut_off_after = cut_off_after
        self.on_cut_off = on_cut_off
        self.status: Status = "UP"
        # time.monotonic() when the last heartbeat the queue accepted was sent (the start before
        # one): a worker frozen (SIGSTOP, a VM pause) while sending does not look fresh after
        self.last_ok = time.monotonic()
        self.published = False
        self.hostname = socket.gethostname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lanner-heartbeat", daemon=True)

    def beat(self) -> None:
        began = time.monotonic()
        heartbeat = WorkerHeartbeat(
            worker_id=self.worker_id,
            hostname=self.hostname,
            group=self.group,
            threads=self.threads,
            running=self.running(),
            date=datetime.now(UTC),
            status=self.status,
        )
        self.queue.emit(WORKERS, self.worker_id, heartbeat.to_json())
        self.last_ok = max(self.last_ok, began)
        self.published = True

    def silent_for(self) -> float:
        """Seconds since the queue last accepted a heartbeat."""
        return time.monotonic() - self.last_ok

    def _loop(self) -> None:
        while True:
            silent = self.silent_for()
            if self.cut_off_after is not None and silent > self.cut_off_after:
                # the coordinator has declared this worker dead: a heartbeat now would make a
                # zombie look alive again; stop beating for good
                if self.on_cut_off is not None:
                    self.on_cut_off(silent)
                return
            try:
                self.beat()
            except Exception:
                log.exception("cannot emit the worker heartbeat")
            if self._stop.wait(self.interval):
                return

    def start(self) -> None:
        self.last_ok = time.monotonic()
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if wait and self._thread.is_alive():
            self._thread.join()
