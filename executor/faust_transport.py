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
rebalance is not acked.

Gaps. aiokafka's position moves past transaction markers and aborted records without handing
them over, so within one *epoch* (consumer generation, and no seek started since) the offsets
between two consecutive records of a partition, or between a seek's target and the first
record after it, hold no record the executor reads: they are recorded as a gap and the commit
passes them. A batch fetched in another epoch (before or during a seek) records nothing and
leaves the epoch's entry alone. Before this rule (2026-12-03), a gap was recorded only inside
one fetch: a run of two offsets without records at a fetch boundary — the commit markers of two
workers' claim transactions, within seconds of the start under load — stopped the partition's
commits for good; every rebalance (a kill of the other executor, a broker restart) then read
everything since again, and Faust's acked lists grew without bound (tests/faults/
test_executor_rebalance_kafka.py: committed offsets stuck at 55 of 2 400 for minutes).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver

log = logging.getLogger("lanner.executor")
# LANNER_EXECUTOR_TRACE=1: a line per record handed over, per seek and per refused ack (what
# it takes to follow an offset across a rebalance; the fault tests turn it on)
trace = logging.getLogger("lanner.executor.trace")
trace.setLevel(logging.INFO if os.environ.get("LANNER_EXECUTOR_TRACE") else logging.WARNING)

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
        # per partition, the last offset known to be read in the current epoch: the offset of
        # the last record handed over, or the seek target - 1. The next record handed over in
        # the same epoch comes from the position aiokafka reached after it, so the offsets
        # between the two hold no record the executor reads (transaction markers, aborted
        # records): a gap the commit may pass
        self._last: dict[Any, tuple[tuple[int, int], int]] = {}

    def _new_consumer_thread(self) -> Any:
        return ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Any) -> bool:
        # a stream skips the records fetched before a rebalance, and Faust acks them "so the
        # lag does not grow": the next commit then passes records no agent processed. They
        # are read again after the rebalance instead (and a record processed across it is
        # applied twice, idempotently)
        app = self.app
        if message.generation_id != app.consumer_generation_id or not app.flow_control.is_active():
            trace.info(
                "not acked (fetched before a rebalance) %s/%s off=%s gen=%s app_gen=%s flow=%s",
                message.tp.topic[-12:],
                message.tp.partition,
                message.offset,
                message.generation_id,
                app.consumer_generation_id,
                app.flow_control.is_active(),
            )
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

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        for tp in revoked:
            self._last.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def pause_partitions(self, tps: Any) -> None:
        # records of a paused partition fetched before the pause are not handed over: the
        # chain of known offsets breaks there
        tps = list(tps)
        for tp in tps:
            self._last.pop(tp, None)
        super().pause_partitions(tps)

    async def perform_seek(self) -> None:
        self._seeks += 1
        targets: dict[Any, int] = {}
        try:
            self._last.clear()
            await super().perform_seek()
            acks_enabled_for = self.app.topics.acks_enabled_for
            for tp in self.assignment():
                if not acks_enabled_for(tp.topic):
                    continue
                target = self._read_offset.get(tp)
                if not target:
                    # aiokafka seeks only to a committed offset above 0: without one the
                    # partition would go on from wherever this member last fetched it
                    await self.seek(tp, 0)  # the first offset kept (auto_offset_reset=earliest)
                    target = 0
                targets[tp] = target
            trace.info(
                "seek to the committed offsets %s",
                {f"{tp.topic[-12:]}/{tp.partition}": o for tp, o in targets.items()},
            )
        finally:
            self._seeks += 1
        epoch = self._epoch()
        for tp, target in targets.items():
            self._last[tp] = (epoch, target - 1)

    async def getmany(self, timeout: float) -> Any:  # pragma: no cover - Faust's generator
        """Faust's ``getmany``, knowing which fetched records it did not hand over.

        Faust stops handing over a fetched batch when the generation changes or the flow stops,
        and skips the records of a partition that is not active: aiokafka's position is past
        them all the same. Before any gap rule, such records waited for the next rebalance's
        seek (an execution held for minutes after a kill -9 of the other executor); with the
        gap rule the next record's gap would even pass them. So the chain of such a partition
        is broken, and within the epoch it is sought back to the first record not handed over.
        """
        fetched_in = self._epoch()  # before the fetch, as the fetch loop takes it
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        handed: dict[Any, set[int]] = {}
        if self.flow_active:
            for tp, record in self.scheduler.iterate(records):
                if not self.flow_active or self.app.consumer_generation_id != generation_id:
                    break
                if (
                    active_partitions is None
                    or tp in active_partitions
                    or tp in self._buffered_partitions
                ):
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    handed.setdefault(tp, set()).add(record.offset)
                    yield tp, self._to_message(tp, record)
        else:
            try:
                await self.perform_seek()
            except Exception as exc:  # noqa: BLE001 - Faust's own handling
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        await self._recover_dropped(records, handed, fetched_in)

    async def _recover_dropped(
        self, records: Any, handed: dict[Any, set[int]], fetched_in: tuple[int, int]
    ) -> None:
        dropped: dict[Any, int] = {}
        for tp, batch in records.items():
            mine = handed.get(tp, set())
            left = [r.offset for r in batch if r.offset not in mine]
            if left:
                dropped[tp] = min(left)
        if not dropped:
            return
        for tp in dropped:
            self._last.pop(tp, None)
        acks_enabled_for = self.app.topics.acks_enabled_for
        wanted = {tp: o for tp, o in dropped.items() if acks_enabled_for(tp.topic)}
        if not wanted or fetched_in != self._epoch() or fetched_in[1] % 2:
            return  # a rebalance or a seek came: its seek reads them again
        assigned = self.assignment()
        self._seeks += 1
        try:
            for tp, offset in wanted.items():
                if tp in assigned:
                    trace.info(
                        "seek back %s/%s to %s (fetched, not handed over)",
                        tp.topic[-12:],
                        tp.partition,
                        offset,
                    )
                    await self.seek(tp, offset)
        finally:
            self._seeks += 1
        epoch = self._epoch()
        # the other partitions' chains hold on: only these positions moved
        for tp, (when, offset) in list(self._last.items()):
            if when == fetched_in:
                self._last[tp] = (epoch, offset)
        for tp, offset in wanted.items():
            if tp in assigned:
                self._last[tp] = (epoch, offset - 1)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
        acks_enabled_for = self.app.topics.acks_enabled_for
        last = self._last
        since_yield = 0
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched_in = self._epoch()
                batch = self.getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                async for tp, message in batch:
                    since_yield += 1
                    if since_yield > _YIELD_EVERY:
                        await self.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    # a fetch begun and ended in one epoch, no seek under way, reads on from
                    # where the last record (or the seek) of that epoch left aiokafka. A batch
                    # fetched before a seek and handed over after it leaves the seek's entry
                    # alone: the next fetch starts at the seek's target
                    if (
                        fetched_in == self._epoch()
                        and fetched_in[1] % 2 == 0
                        and acks_enabled_for(message.topic)
                    ):
                        known = last.get(tp)
                        if known is not None and known[0] == fetched_in and offset - 1 > known[1]:
                            await self._add_gap(tp, known[1] + 1, offset - 1)
                        last[tp] = (fetched_in, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                    if trace.isEnabledFor(logging.INFO):
                        trace.info(
                            "handed %s/%s off=%s gen=%s epoch=%s now=%s %s",
                            tp.topic[-12:],
                            tp.partition,
                            offset,
                            message.generation_id,
                            fetched_in,
                            self._epoch(),
                            "cut by a rebalance" if self.suspend_flow.is_set() else "",
                        )
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
