"""The executor on Kafka: a Faust app with two agents, a timer task and the liveness coordinator.

``create_faust_app(settings)`` builds it (nothing happens at import time); ``lanner server
executor`` runs it. The decisions are the pure modules the embedded executor uses; this shell
decodes, loads the state from a Table, calls them, stores and sends.

- **execution agent** on ``executor`` (key: execution id). Its ``states`` Table holds each
  execution's ``ExecutorState`` (the execution, the ids of applied inputs, wake-ups...); every
  input is applied to the table's state, never to a copy a message carries, so a redelivered
  input, a superseded attempt's result or a late result changes nothing. A terminal execution
  leaves the table after ``executor_state_retention_seconds`` (a ``forget`` wake-up).
- **flow agent** on ``executor-flows`` (key: tenant/namespace/flowId): admission requests and
  state changes of limited flows (``concurrency``), and state changes watched by a Flow trigger
  of the keyed flow. It is the one writer of the flow's slots and trigger windows.
- **timers**: a task that scans the ``wakeups`` Table of this instance's partitions and sends
  the due ``Timer`` inputs (the handler re-checks: a stale timer changes nothing).
- **liveness**: ``executor.liveness_coordinator`` (a thread) hands the jobs of dead workers
  back as ``WorkerDied`` inputs.

At-least-once made effectively-once by the core's idempotence; Faust flushes what an event
sent before it commits the event's offset. Records from the workers' Kafka transactions are
read ``read_committed``, so an aborted claim is never seen.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from common.flow.catalog import FlowCatalog
from common.models.execution import Execution
from common.models.flow import Flow
from common.models.messages import (
    EXECUTOR_INPUT,
    ExecutorInput,
    FlowNotice,
    NewExecution,
    SetLabels,
    Timer,
)
from common.models.state import State
from common.plugins.core.triggers import FlowTrigger
from common.queue import base as topics
from common.settings import Settings

from . import concurrency, flow_triggers, liveness, polling, timers
from .core import CoreConfig, StepResult, step
from .core import fail as core_fail
from .kv import KVReader, flow_trigger_kv, step_with_kv, storage_reader
from .metrics import EXECUTOR_METRICS, observe_step
from .records import step_records
from .state import ExecutorState

log = logging.getLogger("lanner.executor")

FORGET = "forget:"  # the shell's own wake-up: the terminal execution leaves the table
_CACHED = 2000
Outgoing = tuple[str, str, bytes | None]


def _now() -> datetime:
    return datetime.now(UTC)


def _restores(event: ExecutorInput | None) -> bool:
    """An input that brings its execution: a new one, or labels for a purged ended one."""
    if isinstance(event, NewExecution):
        return True
    return isinstance(event, SetLabels) and event.execution is not None


def pack(state_json: bytes) -> bytes:
    """A stored state: zlib-compressed JSON (a changelog record stays far below Kafka's limit
    for executions of thousands of task runs; JSON compresses about tenfold)."""
    return zlib.compress(state_json, 1)


def unpack(stored: bytes) -> bytes:
    return stored if stored.startswith(b"{") else zlib.decompress(stored)


class ExecutionHandler:
    """The execution agent's work on one input, synchronous and Faust-free (tested alone).

    ``apply`` returns what to store (``None``: unchanged; ``b""``: delete) and what to send.
    """

    def __init__(
        self,
        catalog: FlowCatalog,
        config: CoreConfig,
        *,
        retention: timedelta,
        sync_flows: Any = None,
        clock: Any = _now,
        kv_read: KVReader | None = None,
    ) -> None:
        self.catalog = catalog
        self.kv_read = kv_read  # ``kv()`` in the properties the core renders (executor.kv)
        self.config = config
        self.retention = retention
        self.sync_flows = sync_flows or (lambda: None)
        self.clock = clock
        # states as last stored by this instance; dropped when partitions move
        self._cache: OrderedDict[str, ExecutorState] = OrderedDict()

    def forget_cache(self) -> None:
        self._cache.clear()

    def _load(self, key: str, stored: bytes | None) -> ExecutorState | None:
        state = self._cache.pop(key, None)
        if state is not None:
            return state
        return ExecutorState.model_validate_json(unpack(stored)) if stored else None

    def _flow(self, execution: Execution) -> Flow | None:
        flow = self.catalog.of(execution)
        if flow is None or (execution.flow_revision or 0) > (flow.revision or 0):
            # saved just before the execution was created: read the flows topic to its end
            self.sync_flows()
            self.catalog.changed()
            flow = self.catalog.of(execution)
        return flow

    def apply(
        self, key: str, value: bytes | None, stored: bytes | None
    ) -> tuple[bytes | None, dict[str, datetime] | None, list[Outgoing]]:
        """(new stored state, its wake-ups, records to send) for one ``executor`` record."""
        now = self.clock()
        state = self._load(key, stored)
        event: ExecutorInput | None
        try:
            event = EXECUTOR_INPUT.validate_json(value or b"")
        except ValidationError as exc:
            event = None
            reason = (
                f"an undecodable input ({exc.error_count()} error(s): {exc.errors()[0]['msg']})"
            )
        if event is not None and isinstance(event, Timer) and event.key == FORGET:
            if state is not None and state.execution.state.current.terminal:
                self._cache.pop(key, None)
                return b"", {}, []
            return None, None, []
        if state is None and not _restores(event):
            if event is not None:
                log.info("input %s for unknown or purged execution %s dropped", event.kind, key)
            else:
                log.error("undecodable input for unknown execution %s dropped", key)
            return None, None, []
        execution = state.execution if state is not None else event.execution  # type: ignore[union-attr]
        assert execution is not None  # a restoring input carries its execution
        flow = self._flow(execution)
        # a restored execution (labels) changes no state: no notices, no flow triggers
        previous = (
            state.execution.state.current
            if state is not None
            else None
            if isinstance(event, NewExecution)
            else execution.state.current
        )
        try:
            if event is None:
                raise ValueError(reason)
            running = None if flow is not None and flow.concurrency is not None else 0
            result = step_with_kv(
                flow,
                state,
                event,
                now,
                self.config,
                running_count=running,
                owned=True,
                read=self.kv_read,
                step=step,  # looked up at each call (tests replace it)
            )
        except Exception as exc:  # noqa: BLE001 - a bad input fails its own execution only
            result = self._failed(flow, state, event, key, exc, now)
        if result.state is None or not result.changed:
            if state is not None:
                self._remember(state)
            return None, None, []
        new = result.state
        self._remember(new)
        kind = event.kind if event is not None else "undecodable"
        observe_step(kind, previous, new.execution, result.ended, now)
        out = step_records(result)
        snapshot = new.execution.to_json()
        out.append((topics.EXECUTIONS, new.execution.id, snapshot))
        out.extend(self._notices(flow, new.execution, previous, result))
        out.extend(polling.ended_records(new.execution, previous, now))
        wakeups = dict(new.wakeups)
        if new.execution.state.current.terminal:
            ended = new.execution.state.end_date or now
            wakeups[FORGET] = ended + self.retention
        stored_state = pack(new.model_dump_json(by_alias=True, exclude_none=True).encode())
        return stored_state, wakeups, out

    def _remember(self, state: ExecutorState) -> None:
        self._cache[state.execution.id] = state
        while len(self._cache) > _CACHED:
            self._cache.popitem(last=False)

    def _failed(
        self,
        flow: Flow | None,
        state: ExecutorState | None,
        event: ExecutorInput | None,
        key: str,
        exc: Exception,
        now: datetime,
    ) -> StepResult:
        kind = event.kind if event is not None else "undecodable"
        log.exception("executor input %s of execution %s failed", kind, key)
        EXECUTOR_METRICS.errors.inc()
        self._cache.pop(key, None)  # changed in place by a step that did not finish
        if state is None:
            if not isinstance(event, NewExecution):
                return StepResult(state=None)
            state = ExecutorState(execution=event.execution)
        message = (
            f"Lanner could not apply a '{kind}' input to this execution "
            f"({type(exc).__name__}: {exc}); the execution was stopped. This is a defect or a "
            "message from an incompatible version: please report it with the executor log."
        )
        return core_fail(flow, state, message, now, self.config)

    def _notices(
        self,
        flow: Flow | None,
        execution: Execution,
        previous: State | None,
        result: StepResult,
    ) -> list[Outgoing]:
        out: list[Outgoing] = []
        current = execution.state.current
        own_key = concurrency.execution_flow_key(execution)
        if flow is not None and flow.concurrency is not None:
            if current != previous:
                notice = FlowNotice(kind="state", flow_key=own_key, execution=execution)
                out.append((topics.EXECUTOR_FLOWS, own_key, notice.to_json()))
            if result.admission_requested:
                notice = FlowNotice(kind="admit", flow_key=own_key, execution=execution)
                out.append((topics.EXECUTOR_FLOWS, own_key, notice.to_json()))
        if current != previous:
            for watcher in self.catalog.with_trigger(FlowTrigger):
                if not any(
                    isinstance(t, FlowTrigger) and flow_triggers.watched(t, current)
                    for t in watcher.triggers
                ):
                    continue
                key = concurrency.flow_key(watcher.tenant_id, watcher.namespace, watcher.id)
                if key == own_key:
                    continue
                notice = FlowNotice(
                    kind="trigger", flow_key=key, execution=execution, previous=previous
                )
                out.append((topics.EXECUTOR_FLOWS, key, notice.to_json()))
        return out


class FlowHandler:
    """The flow agent's work on one notice: slots and trigger windows of one flow."""

    def __init__(
        self,
        catalog: FlowCatalog,
        sync_flows: Any = None,
        clock: Any = _now,
        disabled: Callable[[], Collection[str]] | None = None,
        kv_read: KVReader | None = None,
    ) -> None:
        self.catalog = catalog
        self.kv_read = kv_read  # ``kv()`` in Flow trigger conditions (executor.kv)
        self.sync_flows = sync_flows or (lambda: None)
        self.clock = clock
        # the Flow triggers disabled through the API (``common.trigger_states``)
        self.disabled = disabled or (lambda: ())

    def apply(
        self, value: bytes | None, slots_stored: bytes | None, windows_stored: bytes | None
    ) -> tuple[bytes | None, bytes | None, list[Outgoing]]:
        """(new slots, new windows, records to send); None: unchanged."""
        try:
            notice = FlowNotice.model_validate_json(value or b"")
        except ValidationError as exc:
            log.error("undecodable flow notice dropped: %s", exc)
            return None, None, []
        tenant, namespace, flow_id = notice.flow_key.split("/", 2)
        flow = self.catalog.get(tenant, namespace, flow_id)
        if flow is None:
            self.sync_flows()
            self.catalog.changed()
            flow = self.catalog.get(tenant, namespace, flow_id)
        out: list[Outgoing] = []
        if notice.kind in ("admit", "state"):
            slots = (
                concurrency.FlowSlots.model_validate_json(slots_stored)
                if slots_stored
                else concurrency.FlowSlots()
            )
            limit = flow.concurrency if flow is not None else None
            if notice.kind == "admit":
                dequeue = concurrency.request_admission(slots, limit, notice.execution.id)
                out.append((topics.EXECUTOR, dequeue.execution_id, dequeue.to_json()))
            for dequeue in concurrency.observe_report(slots, limit, notice.execution):
                out.append((topics.EXECUTOR, dequeue.execution_id, dequeue.to_json()))
            return slots.model_dump_json().encode(), None, out
        if flow is None:
            return None, None, []
        windows = (
            flow_triggers.Windows.model_validate_json(windows_stored)
            if windows_stored
            else flow_triggers.Windows()
        )
        now, disabled = self.clock(), self.disabled()
        execution, previous = notice.execution, notice.previous
        kv = flow_trigger_kv([flow], execution, previous, now, windows, disabled, self.kv_read)
        created, changed = flow_triggers.evaluate(
            [flow], execution, previous, now, windows, disabled, kv=kv
        )
        for new in created:
            inp = NewExecution(id=f"new:{new.id}", execution_id=new.id, execution=new)
            out.append((topics.EXECUTOR, new.id, inp.to_json()))
        return None, (windows.model_dump_json().encode() if changed else None), out


def _disabled_triggers(settings: Settings) -> Any:
    """The Flow triggers disabled through the API: the ``triggers`` topic read from its start
    (a group of this process that never commits) on a thread of its own."""
    import uuid

    from common.backends import create_queue
    from common.trigger_states import DisabledTriggers

    queue = create_queue(settings, client_id="lanner-executor-trigger-states")
    reader = DisabledTriggers(
        queue, f"executor-trigger-states.{uuid.uuid4().hex}", commit=False, owns_queue=True
    )
    reader.refresh(timeout=2.0)  # what the topic holds now, before the first notice
    reader.start_thread()
    return reader


def instance_name(settings: Settings) -> str:
    """Stable per instance (static group membership): LANNER_INSTANCE_ID, else the host name."""
    return settings.instance_id or socket.gethostname()


def create_faust_app(
    settings: Settings,
    *,
    flows: Any = None,
    group_alive: Callable[[str | None], bool | None] | None = None,
) -> Any:
    """The executor's Faust app. ``flows``: a started ``TopicFlowSource`` (made here if None).

    ``group_alive`` (the liveness coordinator's view: None while unknown) adds a warning to the
    logs of a task sent to a worker group no live worker serves.
    """
    from common.backends import create_storage
    from common.flow.topic_source import TopicFlowSource
    from common.queue.kafka_client import broker_count, create_admin, ensure_topics
    from common.queue.kafka_topics import plan_topics, split_group, topic_name
    from common.queue.offload import Offloader
    from executor.faust_transport import ExecutorApp

    prefix = settings.kafka_topic_prefix
    servers = settings.kafka_bootstrap_servers
    admin = create_admin(servers)
    replication = min(3, broker_count(admin))
    metadata = admin.list_topics(timeout=30).topics

    def partitions(logical: str) -> int:
        found = metadata.get(topic_name(logical, prefix))
        if found is None or not found.partitions:
            raise RuntimeError(
                f"Kafka topic {topic_name(logical, prefix)} is missing: run `lanner kafka init`"
            )
        return len(found.partitions)

    instance = instance_name(settings)
    datadir = settings.data_dir / "executor" / instance
    datadir.mkdir(parents=True, exist_ok=True)
    app = ExecutorApp(
        f"{prefix}executor",
        broker=[f"kafka://{server}" for server in servers.split(",")],
        store="rocksdb://",
        datadir=str(datadir),
        topic_partitions=partitions(topics.EXECUTOR),
        topic_replication_factor=replication,
        table_standby_replicas=1,
        consumer_group_instance_id=instance,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.executor_session_timeout_seconds,
        broker_heartbeat_interval=min(1.0, settings.executor_session_timeout_seconds / 3),
        broker_commit_interval=0.5,
        web_enabled=False,
        autodiscover=False,
        stream_wait_empty=False,
        producer_linger=0.002,
    )
    if flows is None:
        flows = TopicFlowSource(servers, topic_name(topics.FLOWS, prefix))
        flows.start()
    # records over Kafka's limit travel through internal storage, both ways
    storage = create_storage(settings)
    offloader = Offloader(storage, settings.queue_max_record_bytes)
    app.lanner_flows = flows
    config = CoreConfig(globals=settings.globals, envs=settings.template_envs(os.environ))
    executions = ExecutionHandler(
        FlowCatalog(flows),
        config,
        retention=timedelta(seconds=settings.executor_state_retention_seconds),
        sync_flows=flows.sync,
        kv_read=storage_reader(storage),
    )
    disabled = _disabled_triggers(settings)
    app.lanner_trigger_states = disabled
    flow_handler = FlowHandler(
        FlowCatalog(flows),
        sync_flows=flows.sync,
        disabled=disabled.uids,
        kv_read=storage_reader(storage),
    )
    flows_version = [flows.version]

    def refresh_catalogs() -> None:
        if flows.version != flows_version[0]:
            flows_version[0] = flows.version
            executions.catalog.changed()
            flow_handler.catalog.changed()

    executor_topic = app.topic(
        topic_name(topics.EXECUTOR, prefix), key_serializer="raw", value_serializer="raw"
    )
    flows_partitions = partitions(topics.EXECUTOR_FLOWS)
    flow_topic = app.topic(
        topic_name(topics.EXECUTOR_FLOWS, prefix),
        key_serializer="raw",
        value_serializer="raw",
        partitions=flows_partitions,
    )
    # bytes values are stored as they are ("raw"); keys are strings (DESIGN: Faust returns str)
    raw: dict[str, Any] = {"key_type": str, "value_type": bytes}
    states = app.Table("states", partitions=app.conf.topic_partitions, **raw)
    wakeups = app.Table("wakeups", key_type=str, partitions=app.conf.topic_partitions)
    slots = app.Table("slots", partitions=flows_partitions, **raw)
    windows = app.Table("windows", partitions=flows_partitions, **raw)
    out_topics: dict[str, Any] = {}

    def out_topic(logical: str) -> Any:
        found = out_topics.get(logical)
        if found is None:
            found = out_topics[logical] = app.topic(
                topic_name(logical, prefix), key_serializer="raw", value_serializer="raw"
            )
        return found

    groups_ready: set[str] = set()

    async def ensure_group_topics(logical: str) -> None:
        """A task of a worker group no worker has started yet waits in its group's topic, so
        the topic is created on the first task sent there (the worker would create it too)."""
        group = split_group(logical)[1]
        if group is None or group in groups_ready:
            return
        planned = plan_topics(prefix, replication_factor=replication, worker_groups=[group])
        mine = [t for t in planned if t.name.endswith(f".{group}") and t.spec.per_worker_group]
        await asyncio.to_thread(ensure_topics, admin, mine)
        groups_ready.add(group)

    def served(group: str | None) -> bool:
        return group_alive is None or group_alive(group) is not False

    async def send(records: list[Outgoing]) -> None:
        for logical, _, _ in records:
            await ensure_group_topics(logical)
        records = records + liveness.unserved_task_logs(records, served, _now())
        for logical, key, value in records:
            value = offloader.outgoing(logical, value)
            await out_topic(logical).send(key=key.encode(), value=value)

    @app.agent(executor_topic, name="executions")
    async def execution_agent(stream: Any) -> None:
        async for event in stream.events():
            key = event.key.decode() if isinstance(event.key, bytes) else str(event.key)
            refresh_catalogs()
            try:
                value = offloader.incoming(event.value)
                stored = states.get(key)
                stored, due, out = executions.apply(
                    key, value, offloader.incoming(stored) if stored else None
                )
            except Exception:  # noqa: BLE001 - one input never stops the agent
                log.exception(
                    "executor input for %s at offset %s dropped", key, event.message.offset
                )
                EXECUTOR_METRICS.errors.inc()
                continue
            # sent before the state is stored: an input redelivered after a crash between the
            # two is applied again from the old state and sends the same records again (their
            # ids make them idempotent), where the other order would have lost them
            await send(out)
            if stored == b"":
                states.pop(key, None)
                wakeups.pop(key, None)
            elif stored is not None:
                states[key] = offloader.outgoing("executor-states", stored)
                encoded = {k: v.isoformat() for k, v in (due or {}).items()}
                if encoded:
                    wakeups[key] = encoded
                elif key in wakeups:
                    del wakeups[key]

    @app.agent(flow_topic, name="flows")
    async def flow_agent(stream: Any) -> None:
        async for event in stream.events():
            key = event.key.decode() if isinstance(event.key, bytes) else str(event.key)
            refresh_catalogs()
            try:
                new_slots, new_windows, out = flow_handler.apply(
                    offloader.incoming(event.value), slots.get(key), windows.get(key)
                )
            except Exception:  # noqa: BLE001 - one notice never stops the agent
                log.exception("flow notice for %s at offset %s dropped", key, event.message.offset)
                EXECUTOR_METRICS.errors.inc()
                continue
            await send(out)  # before the state, as in the execution agent
            if new_slots is not None:
                slots[key] = new_slots
            if new_windows is not None:
                windows[key] = new_windows

    sent = timers.Sent()

    @app.timer(0.25)
    async def due_timers() -> None:
        now = _now()
        records: list[Outgoing] = []
        for execution_id, encoded in list(wakeups.items()):
            due = {k: datetime.fromisoformat(v) for k, v in (encoded or {}).items()}
            for timer in timers.to_send(sent, str(execution_id), due, now):
                records.append((topics.EXECUTOR, timer.execution_id, timer.to_json()))
        await send(records)
        # timers applied long ago are no longer worth remembering
        horizon = now - timedelta(minutes=5)
        for timer_id in [t for t, at in sent.at.items() if at < horizon]:
            del sent.at[timer_id]

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        executions.forget_cache()

    inputs = {executor_topic.get_topic_name(): "executor", flow_topic.get_topic_name(): "flows"}

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # the spread of the load over the instances, as the operator sees it
        held = Counter(inputs[tp.topic] for tp in assigned if tp.topic in inputs)
        for label in inputs.values():
            EXECUTOR_METRICS.partitions.labels(topic=label).set(held[label])

    tables = {"states": states, "wakeups": wakeups, "slots": slots, "windows": windows}

    @app.timer(10.0)
    async def export_gauges() -> None:
        """Table sizes and the input lag, as an operator watches them."""
        for name, table in tables.items():
            EXECUTOR_METRICS.table_keys.labels(table=name).set(_estimated_keys(table))
        consumer = app.consumer
        lag: Counter[str] = Counter({label: 0 for label in inputs.values()})
        for tp in consumer.assignment():
            label = inputs.get(tp.topic)
            committed = consumer._committed_offset.get(tp)  # noqa: SLF001 - Faust keeps no other
            high = consumer.highwater(tp)
            if label is not None and high is not None:
                lag[label] += max(0, high - (committed or 0))
        for label, records in lag.items():
            EXECUTOR_METRICS.lag.labels(topic=label).set(records)

    app.lanner_handlers = (executions, flow_handler)
    return app


def _estimated_keys(table: Any) -> int:
    """RocksDB's estimate of the keys of a table's active partitions (counting them would
    read every key)."""
    store = table.data
    dbs = getattr(store, "_dbs_for_actives", None)
    if dbs is None:  # the memory store of the tests
        return len(store)
    return sum(db.property_int_value("rocksdb.estimate-num-keys") or 0 for db in dbs())


__all__ = ["ExecutionHandler", "FlowHandler", "create_faust_app", "instance_name"]
