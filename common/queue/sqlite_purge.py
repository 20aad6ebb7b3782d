"""Background deletion of the SQLite queue's consumed records.

A record can go once every durable group that subscribes to its topic has committed it: the
bound of a partition is the lowest committed offset among those groups (a group that never
committed the partition holds it at 0). Live views (``from_latest`` subscriptions) never hold
records back: they only want what comes next and may be gone without a trace. Whatever the
bound, the newest ``retain`` records of each topic stay, a margin for a consumer that
subscribes later. Kafka deletes by time; here the table stays as small as the consumers allow.

Deletion goes in batches of ``_BATCH`` rows, each its own short transaction, so the writer lock
the executor and the API share is never held for long.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .sqlite_groups import NOW

if TYPE_CHECKING:
    from .sqlite import SqliteQueue

log = logging.getLogger("lanner.queue")

_BATCH = 500
_NO_PIN = 2**62
# a member whose lease ended this long ago is forgotten even if no member of its group checks
_FORGET_MEMBERS_AFTER = 60.0


class Purger:
    def __init__(self, queue: SqliteQueue, *, interval: float = 10.0, retain: int = 1000) -> None:
        self.queue = queue
        self.db = queue.db
        self.interval = interval
        self.retain = retain
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lanner-queue-purge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                deleted = self.purge_once()
                if deleted:
                    log.debug("purged %d consumed queue records", deleted)
            except Exception:  # noqa: BLE001 - retried at the next interval
                log.exception("queue purge failed; retrying")

    def purge_once(self) -> int:
        self._forget_gone_members()
        deleted = 0
        for topic, partitions in self.db.query("SELECT topic, partitions FROM queue_topics"):
            margin = self.db.query(
                "SELECT offset FROM queue_records WHERE topic = ? ORDER BY offset DESC "
                "LIMIT 1 OFFSET ?",
                (topic, self.retain),
            )
            if not margin:
                continue
            bounds = [
                min(int(margin[0][0]), self._pinned(topic, partition))
                for partition in range(int(partitions))
            ]
            # up to the lowest bound, every partition goes: one scan of the topic (a scan per
            # partition reads each of the topic's records once per partition, 3x the cost)
            common = min(bounds)
            deleted += self._delete("topic = ? AND offset <= ?", (topic, common), common > 0)
            for partition, bound in enumerate(bounds):
                deleted += self._delete(
                    "topic = ? AND offset > ? AND offset <= ? AND partition = ?",
                    (topic, common, bound, partition),
                    bound > common,
                )
        return deleted

    def _delete(self, where: str, params: tuple[object, ...], anything: bool) -> int:
        """Delete the records ``where`` says, ``_BATCH`` at a time, each batch a transaction."""
        deleted = 0
        while anything and not self._stop.is_set():
            with self.db.transaction() as conn:
                count = conn.execute(
                    "DELETE FROM queue_records WHERE offset IN (SELECT offset FROM "
                    f"queue_records WHERE {where} ORDER BY offset LIMIT ?)",
                    (*params, _BATCH),
                ).rowcount
            deleted += count
            if count < _BATCH:
                break
            self._stop.wait(0.01)  # let the other writers in between batches
        return deleted

    def _pinned(self, topic: str, partition: int) -> int:
        """The highest offset of the partition every durable group of the topic committed."""
        pinned, groups = self.db.query(
            "SELECT MIN(COALESCE(o.offset, 0)), COUNT(*) FROM queue_subscriptions s "
            "LEFT JOIN queue_offsets o ON o.grp = s.grp AND o.topic = s.topic "
            "AND o.partition = ? WHERE s.topic = ? AND s.durable = 1",
            (partition, topic),
        )[0]
        return int(pinned) if groups else _NO_PIN

    def _forget_gone_members(self) -> None:
        """Rows left by members that died without closing, in groups nobody polls any more
        (a live view of a killed process), and what live views leave once they are gone."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM queue_owners WHERE member_id IN (SELECT member_id FROM "
                f"queue_members WHERE expires < {NOW} - ?)",
                (_FORGET_MEMBERS_AFTER,),
            )
            conn.execute(
                f"DELETE FROM queue_members WHERE expires < {NOW} - ?", (_FORGET_MEMBERS_AFTER,)
            )
            for table in ("queue_offsets", "queue_subscriptions"):
                conn.execute(
                    f"DELETE FROM {table} WHERE grp IN (SELECT grp FROM queue_subscriptions "
                    "WHERE durable = 0 EXCEPT SELECT grp FROM queue_subscriptions WHERE "
                    "durable = 1 EXCEPT SELECT grp FROM queue_members)"
                )
