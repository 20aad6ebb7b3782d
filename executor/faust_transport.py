"""The executor's Kafka transport for Faust: read_committed, and a fetch loop that loses
nothing across a rebalance.

Faust's own fetch loop (``Consumer._drain_messages``) remembers the last offset it handed over
per partition. It drops every later record at or below that offset as already read, and it
treats a jump past it as a gap (offsets without a record: transaction markers, aborted
records) that the next commit may skip. Around a rebalance, records fetched before the seek to
the committed offsets are handed over after it. The mark then jumps past records that were
never processed: their re-read copies are dropped, and the gap lets the commit pass them. And
the stream acks the records it skips for being from before the rebalance. The executor that
survived a kill -9 of its peer lost workers' results this way, and their executions stayed
RUNNING for ever (about one run in seven of the kill -9 test; the logs showed the mark reset to
458 by the seek and the next record handed over at 535).

Here nothing is dropped: every input is applied idempotently (the core skips the input ids it
already applied), so a record read twice costs only its processing. A record skipped around a
rebalance is not acked. A gap is recorded only between two records of one partition in one
fetch: across fetches the position cannot be trusted (after a seek to 60 the next fetch began
at 120). A single missing offset needs no gap (Faust commits past it); a longer run of them at
a fetch boundary (an aborted claim) holds the partition's commits back until the executor
restarts, which then reads those records again: slower, never lost.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver

log = logging.getLogger("lanner.executor")

_YIELD_EVERY = 100


class ReadCommittedThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # the workers' claims are transactions
        return consumer


class ExecutorConsumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seeks = 0  # seeks started and ended: a change means a batch may predate a seek

    def _new_consumer_thread(self) -> Any:
        return ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Any) -> bool:
        # a stream skips the records fetched before a rebalance, and Faust acks them "so the
        # lag does not grow": the next commit then passes records no agent processed. They
        # are read again after the rebalance instead (and a record processed across it is
        # applied twice, idempotently)
        app = self.app
        if message.generation_id != app.consumer_generation_id or not app.flow_control.is_active():
            return False
        return bool(super().ack(message))

    def topic_partitions(self, topic: str) -> int | None:
        # aiokafka's group snapshot counts a subscribed topic it has no metadata for yet (a
        # table's changelog topic Faust has just created, its leaders not elected) as 0
        # partitions, and Faust's check of a table's source topic against its changelog then
        # raised PartitionsMismatch ("has 4 partitions, but the changelog...") in the flow
        # agent at start. Unknown is None: Faust checks again on the next write.
        found: int | None = super().topic_partitions(topic)
        return found or None

    def _epoch(self) -> tuple[int, int]:
        return self.app.consumer_generation_id, self._seeks

    async def perform_seek(self) -> None:
        self._seeks += 1
        try:
            await super().perform_seek()
            acks_enabled_for = self.app.topics.acks_enabled_for
            for tp in self.assignment():
                if acks_enabled_for(tp.topic) and not self._read_offset.get(tp):
                    # aiokafka seeks only to a committed offset above 0: without one the
                    # partition would go on from wherever this member last fetched it
                    await self.seek(tp, 0)  # the first offset kept (auto_offset_reset=earliest)
        finally:
            self._seeks += 1

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
        acks_enabled_for = self.app.topics.acks_enabled_for
        since_yield = 0
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched_in = self._epoch()
                batch = self.getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                previous: dict[Any, int] = {}  # the last offset of each partition in this batch
                async for tp, message in batch:
                    since_yield += 1
                    if since_yield > _YIELD_EVERY:
                        await self.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    before = previous.get(tp)
                    previous[tp] = offset
                    if (
                        before is not None
                        and offset - 1 > before
                        and fetched_in == self._epoch()
                        and acks_enabled_for(message.topic)
                    ):
                        # offsets skipped inside one fetch hold no record (transaction markers,
                        # aborted records): the commit may pass them
                        await self._add_gap(tp, before + 1, offset - 1)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class ExecutorTransport(driver.Transport):
    Consumer = ExecutorConsumer


class ExecutorApp(faust.App):
    def _new_transport(self) -> Any:
        return ExecutorTransport(self.conf.broker_consumer, self)

    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:
        # Faust would restart the agent past an event it never acknowledged, its commits
        # stalled there for good; a new process re-reads from the last commit instead
        log.critical("executor agent %s crashed (%r): exiting to be restarted", agent, exc)
        logging.shutdown()
        os._exit(70)


__all__ = ["ExecutorApp"]
