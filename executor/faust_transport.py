"""The executor's Kafka transport for Faust: read_committed, commits that never pass a record
the executor has not processed nor one whose table changes are not in Kafka yet, a flow
control that keeps what the streams hold across a recovery's repeated resumes, and a watchdog
that reads again what a rebalance left unread.

Every input is applied idempotently (the core skips the input ids it already applied), so a
record read twice costs only its processing; a record skipped is an execution that never ends.

What the commit may pass. Faust commits past an offset when its record was acked, or when the
offset is in a *gap* (an offset without a readable record). Faust guesses gaps from jumps
between consecutive records it hands over, and passes one missing offset at the committed
position, or any number when nothing was committed yet (``Consumer._new_offset``). Around a
rebalance records fetched before a seek are handed over after it, so a jump is no proof: the
executor lost workers' results this way and their executions stayed RUNNING (the kill -9 test,
about one run in seven; and in 2026-12-03's fault suite after two successive fixes of the
guess, ``steady-00021``: a seek to 49, then 49..72 never handed over and counted as a gap).
Here the gaps are facts aiokafka hands over: each ``FetchResult.getall`` returns the readable
records of ``[position it checked, position it leaves)``; the other offsets of that range are
transaction markers and aborted records, never readable under read_committed. Only those are
gaps, and the commit moves only over a run of acked offsets and gaps that starts at the
committed offset (``_new_offset``).

What a rebalance leaves unread. Faust stops handing over a fetched batch when the generation
changes or the flow stops, and skips the records of a partition that is not active; a stream's
queue is emptied when the app's flow resumes, so an input handed over while it is suspended is
dropped unprocessed (it is not handed over here). aiokafka's position is past such records all
the same: their partition is sought back to the first of them, if its position is still past it
(a seek may have moved it back already). Any other way a record is left unread shows as a
committed offset that stays below the partition's last stable offset: the watchdog reads the
partition again from there after ``_STALL_SECONDS``.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from typing import Any

import faust
from aiokafka.consumer.fetcher import FetchResult
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.transport.producer import ProducerBuffer
from mode import Service
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

log = logging.getLogger("lanner.executor")
# LANNER_EXECUTOR_TRACE=1: a line per record handed over, per seek and per refused ack (what
# it takes to follow an offset across a rebalance; the fault tests turn it on)
trace = logging.getLogger("lanner.executor.trace")
trace.setLevel(logging.INFO if os.environ.get("LANNER_EXECUTOR_TRACE") else logging.WARNING)

_YIELD_EVERY = 100
_WATCH_EVERY = 5.0
# a committed offset this long below the last stable offset is read again: far above the
# time an input takes (milliseconds) and the commit interval (0.5 s)
_STALL_SECONDS = 10.0

# (partition, first offset, end offset, offsets of the records handed out) of each
# FetchResult.getall, recorded only inside ReadCommittedThread._fetch_records
_spans: contextvars.ContextVar[list[tuple[Any, int, int, list[int]]] | None] = (
    contextvars.ContextVar("lanner_fetch_spans", default=None)
)
_plain_getall = FetchResult.getall


def _getall_recording_span(self: Any, max_records: int | None = None) -> list[Any]:
    spans = _spans.get()
    pending = self._partition_records
    if spans is None or pending is None:
        return _plain_getall(self, max_records)
    start = pending.next_fetch_offset
    assignment = self._assignment
    state = assignment.state_value(self._topic_partition) if assignment.active else None
    # getall hands out records only when the position is where the fetch began (its own
    # check_assignment); it then moves the position past what it read, markers included
    checked = (
        state is not None
        and not state.paused
        and state.has_valid_position
        and state.position == start
    )
    records: list[Any] = _plain_getall(self, max_records)
    if checked and state is not None and state.position > start:
        spans.append((self._topic_partition, start, state.position, [r.offset for r in records]))
    return records


def unread_offsets(start: int, end: int, offsets: list[int]) -> list[tuple[int, int]]:
    """The ranges ``[begin, stop)`` of ``[start, end)`` that hold none of ``offsets``: what a
    getall read past without a record (markers, aborted records)."""
    ranges: list[tuple[int, int]] = []
    begin = start
    for offset in sorted(offsets):
        if offset > begin:
            ranges.append((begin, offset))
        begin = max(begin, offset + 1)
    if end > begin:
        ranges.append((begin, end))
    return ranges


def commit_point(committed: int, acked: list[int], gaps: Any) -> tuple[int, int]:
    """Where the commit may move from ``committed``: past a run of acked offsets and gaps
    (an IntervalTree) that starts there, never past an offset that is neither. Returns that
    offset and how many of ``acked`` (sorted here) it passed."""
    acked.sort()
    passed = 0
    following = committed
    while True:
        while passed < len(acked) and acked[passed] < following:
            passed += 1  # committed before, or read twice
        if passed < len(acked) and acked[passed] == following:
            following += 1
            passed += 1
            continue
        covering = gaps.at(following)
        if not covering:
            return following, passed
        following = max(interval.end for interval in covering)


class Fetched(dict[Any, list[Any]]):
    """Faust's record map, with the spans of offsets the fetch covered."""

    def __init__(self, records: dict[Any, list[Any]], spans: list[tuple[Any, int, int, list[int]]]):
        super().__init__(records)
        self.spans = spans


class ReadCommittedThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._isolation_level = "read_committed"  # the workers' claims are transactions
        # the executor's process holds no other aiokafka consumer; outside a fetch of this
        # thread the wrapper hands the call on unchanged
        FetchResult.getall = _getall_recording_span
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        spans: list[tuple[Any, int, int, list[int]]] = []
        token = _spans.set(spans)
        try:
            records = await super()._fetch_records(
                consumer, active_partitions, timeout=timeout, max_records=max_records
            )
        finally:
            _spans.reset(token)
        return Fetched(records, spans)

    def seek_back(self, offsets: dict[Any, int]) -> dict[Any, tuple[int, int]]:
        """Seek each partition still assigned whose position is past its offset back to it;
        the partitions moved, with their offset and former position. Called from Faust's loop,
        as Faust's own seeks are: a call into this thread's method queue can wait behind a
        fetch and a commit that wait for the rebalance under way."""
        consumer = self._ensure_consumer()
        subscription = consumer._subscription
        assigned = subscription.assigned_partitions()
        moved: dict[Any, tuple[int, int]] = {}
        for tp, offset in offsets.items():
            key = driver.ensure_aiokafka_TP(tp)
            if key not in assigned:
                continue
            state = subscription.subscription.assignment.state_value(key)
            if state.has_valid_position and state.position > offset:
                moved[tp] = (offset, state.position)
                consumer.seek(key, offset)
        return moved

    def last_stable_offset(self, tp: Any) -> int | None:
        consumer = self._consumer
        if consumer is None:
            return None
        try:
            found = consumer.last_stable_offset(tp)
        except AssertionError:  # not assigned any more
            return None
        return found if isinstance(found, int) and found >= 0 else None


class ExecutorConsumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seeks = 0  # seeks started and ended: a change means a batch may predate a seek
        # per partition: the committed offset last seen below the last stable offset, and since when
        self._stalled: dict[Any, tuple[int, float]] = {}
        self.current_batch: Any = None  # the fetch loop's generator (for the state dump)

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

    async def perform_seek(self) -> None:
        self._seeks += 1
        try:
            await super().perform_seek()
            acks_enabled_for = self.app.topics.acks_enabled_for
            never_committed = [
                tp
                for tp in self.assignment()
                if acks_enabled_for(tp.topic) and not self._read_offset.get(tp)
            ]
            for tp in never_committed:
                # aiokafka seeks only to a committed offset above 0: without one the
                # partition would go on from wherever this member last fetched it
                await self.seek(tp, 0)  # the first offset kept (auto_offset_reset=earliest)
            if never_committed:
                # the commit starts from the first offset the topic still holds
                earliest = await self.earliest_offsets(*never_committed)
                for tp in never_committed:
                    self._committed_offset[tp] = earliest.get(tp) or 0
            trace.info(
                "seek to the committed offsets %s",
                {
                    f"{tp.topic[-12:]}/{tp.partition}": self._committed_offset.get(tp)
                    for tp in self.assignment()
                    if acks_enabled_for(tp.topic)
                },
            )
        finally:
            self._seeks += 1
            self._stalled.clear()

    def _new_offset(self, tp: Any) -> int | None:
        committed = self._committed_offset.get(tp)
        if committed is None:
            return None
        acked = self._acked[tp]
        gaps = self._gap[tp]
        following, passed = commit_point(committed, acked, gaps)
        if passed:
            self._acked_index[tp].difference_update(acked[:passed])
            del acked[:passed]
        if following == committed:
            return None
        gaps.chop(0, following)
        return following

    def _record_gaps(self, spans: list[tuple[Any, int, int, list[int]]]) -> None:
        acks_enabled_for = self.app.topics.acks_enabled_for
        for tp, start, end, offsets in spans:
            if not acks_enabled_for(tp.topic):
                continue
            gaps = self._gap[tp]
            self._acked[tp]  # noqa: B018 - a commit looks only at partitions with an ack list
            for begin, stop in unread_offsets(start, end, offsets):
                gaps.addi(begin, stop)
            gaps.merge_overlaps()

    async def getmany(self, timeout: float) -> Any:  # pragma: no cover - Faust's generator
        """Faust's ``getmany``, recording the gaps the fetch proved and knowing which fetched
        records it did not hand over.

        Faust stops handing over a fetched batch when the generation changes or the flow stops,
        and skips the records of a partition that is not active; inputs are not handed over
        while the app's flow is suspended: aiokafka's position is past them all the same. Such
        a partition is sought back to the first record not handed over when its position is
        still past it.
        """
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if isinstance(records, Fetched):
            self._record_gaps(records.spans)
        handed: dict[Any, set[int]] = {}
        flow_control = self.app.flow_control
        acks_enabled_for = self.app.topics.acks_enabled_for
        if self.flow_active:
            for tp, record in self.scheduler.iterate(records):
                if not self.flow_active or self.app.consumer_generation_id != generation_id:
                    break
                if not flow_control.is_active() and acks_enabled_for(tp.topic):
                    # a stream's queue is emptied when the flow resumes: an input handed over
                    # while it is suspended (during the seek to the committed offsets) was
                    # dropped there unprocessed (trace: 32..50 handed, never acked). Changelog
                    # records still go through: the table recovery waits for them
                    continue
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
        await self._recover_dropped(records, handed)

    async def _recover_dropped(self, records: Any, handed: dict[Any, set[int]]) -> None:
        acks_enabled_for = self.app.topics.acks_enabled_for
        dropped: dict[Any, int] = {}
        for tp, batch in records.items():
            mine = handed.get(tp, set())
            left = [r.offset for r in batch if r.offset not in mine]
            if left and acks_enabled_for(tp.topic):
                dropped[tp] = min(left)
        if not dropped:
            return
        # a rebalance's seek may have come before these were fetched (seen: a batch fetched
        # during the seek to the committed offsets, dropped for its partition was not active
        # yet, and the position past it): only the position says whether they will be read
        # again. Moving it back is always safe; forward never happens here
        self._seeks += 1
        try:
            moved = self._thread.seek_back(dropped)
        finally:
            self._seeks += 1
        for tp, (offset, position) in moved.items():
            trace.info(
                "seek back %s/%s from %s to %s (fetched, not handed over)",
                tp.topic[-12:],
                tp.partition,
                position,
                offset,
            )

    @Service.task
    async def _watch_unread(self) -> None:  # pragma: no cover - a service task
        while not self.should_stop:
            await self.sleep(_WATCH_EVERY)
            try:
                await self._read_stalled_again()
            except Exception:  # noqa: BLE001 - the watchdog must outlive a bad round
                log.exception("executor watchdog round failed")

    async def _read_stalled_again(self) -> None:
        if not self.flow_active or self.app.rebalancing:
            self._stalled.clear()
            return
        if self._commit_fut is not None:
            # a commit under way has taken its offsets off the acked lists: the committed
            # offset moves when it ends (seen lasting 12 s through a broker restart)
            return
        acks_enabled_for = self.app.topics.acks_enabled_for
        now = time.monotonic()
        for tp in self.assignment():
            if not acks_enabled_for(tp.topic):
                continue
            committed = self._committed_offset.get(tp)
            end = self._thread.last_stable_offset(tp)
            if committed is None or end is None or committed >= end:
                self._stalled.pop(tp, None)
                continue
            seen = self._stalled.get(tp)
            if seen is None or seen[0] != committed:
                self._stalled[tp] = (committed, now)
                continue
            if now - seen[1] < _STALL_SECONDS:
                continue
            acked = sorted(self._acked.get(tp) or ())
            in_flight = sorted(m.offset for m in list(self._unacked_messages) if m.tp == tp)
            log.warning(
                "executor: %s[%s] has not moved past offset %s for %.0f s (last stable offset"
                " %s; processed above it: %d from %s; handed over, not processed: %s): reading"
                " it again from there",
                tp.topic,
                tp.partition,
                committed,
                now - seen[1],
                end,
                len(acked),
                acked[0] if acked else "-",
                in_flight[:5] or "-",
            )
            self._seeks += 1
            try:
                await self.seek(tp, committed)
            finally:
                self._seeks += 1
            self._stalled[tp] = (committed, now)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
        # Faust's loop without its read-offset rules: it dropped every record at or below the
        # last offset handed over as already read, and treated a jump past it as a gap
        since_yield = 0
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched_in = self._epoch()
                batch = self.current_batch = self.getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                async for tp, message in batch:
                    since_yield += 1
                    if since_yield > _YIELD_EVERY:
                        await self.sleep(0)
                        since_yield = 0
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                    if trace.isEnabledFor(logging.INFO):
                        trace.info(
                            "handed %s/%s off=%s gen=%s epoch=%s now=%s %s",
                            tp.topic[-12:],
                            tp.partition,
                            message.offset,
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


class SendAllBuffer(ProducerBuffer):
    """Faust's producer buffer, with a flush that returns only once every message put in it
    was handed to the Kafka producer.

    The commit flushes this buffer, then the Kafka producer, then commits the offsets: the
    table changes an event made (its changelog records) must be in Kafka before the event's
    offset is. Faust's own flush gives up as soon as one message takes more than 0.1 s to go
    out, and returns while the last message taken is still being published; the offsets then
    passed events whose changelog records were still here. Seen under load: an executor
    killed with -9 right after such a commit, and the survivor, its state recovered up to the
    changelog's end, dropped the workers' results as "unknown or purged execution" (the
    executions never ended).
    """

    async def _send_pending(self, fut: Any) -> None:
        try:
            await super()._send_pending(fut)
        finally:
            self.pending.task_done()

    async def flush(self) -> None:
        if not self.should_stop and (await self.wait_first(self.pending.join())).done:
            return
        if not self.should_stop:
            # the sending task crashed: the commit must not pass what it did not send
            raise RuntimeError(f"the producer buffer crashed: {self.crash_reason!r}")
        # the sending task ends with the service: what is left is sent from here
        while not self.pending.empty():
            await self._send_pending(self.pending.get_nowait())


class ExecutorProducer(driver.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.app.conf.producer_threaded:
            raise RuntimeError("the executor's producer flushes its own buffer: not threaded")
        self.buffer = SendAllBuffer(loop=self.loop, beacon=self.beacon)
        self.buffer.app = self.app


class ExecutorTransport(driver.Transport):
    Consumer = ExecutorConsumer
    Producer = ExecutorProducer


class ResumeOnceFlowControl(FlowControlEvent):
    """Faust's flow control, whose resume empties the streams' queues only when the flow was
    suspended.

    A table recovery resumes the flow up to three times (after reading the changelogs, after
    starting the standbys, after the seek to the committed offsets) and each of Faust's
    resumes empties the queues: inputs handed over after the first were dropped unprocessed
    while later ones were (fault suite under load: ``executor[0]`` offset 85 handed at the
    second resume, 86.. processed, the commit held at 85 until the watchdog read it again).
    What the queues hold from before a rebalance is emptied at the revocation and at the
    resume that ends the suspension.
    """

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


class ExecutorApp(faust.App):
    def _new_transport(self) -> Any:
        return ExecutorTransport(self.conf.broker_consumer, self)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return ResumeOnceFlowControl(loop=self.loop)

    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:
        # Faust would restart the agent past an event it never acknowledged, its commits
        # stalled there for good; a new process re-reads from the last commit instead
        log.critical("executor agent %s crashed (%r): exiting to be restarted", agent, exc)
        logging.shutdown()
        os._exit(70)


__all__ = ["ExecutorApp"]
