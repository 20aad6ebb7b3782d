"""The scheduler loop: keep the flows with Schedule triggers, tick every second, emit executions.

Each tick does the same steps: read new flow events (``flows`` topic, group ``scheduler``),
evaluate every Schedule trigger with ``scheduler.schedule.evaluate`` at the clock's ``now``, then
store the changed trigger states and emit, in one commit:

- ``executor``: ``NewExecution`` keyed by execution id (``id = "new:<execution id>"``);
- ``triggers``: the new ``TriggerState`` keyed by trigger uid (tombstone when it goes away);
- ``logs``: skipped dates and trigger errors, keyed by trigger uid.

Before evaluating, a tick applies the users' pending changes (enable, disable, unlock, backfill)
of the triggers it evaluates: they arrive as requests on the ``triggers`` topic and the new state
is written with the others (``scheduler._requests`` describes the protocol).

At start the flows come from the flow repository, then the ``flows`` topic keeps them fresh (a
record of a revision older than the one known is ignored). On Kafka (``ownership``) a replica
evaluates only the flows of its partitions of ``flows`` (``scheduler._ownership``).
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from common.errors import LannerError
from common.flow.parser import parse_flow
from common.models.flow import Flow
from common.models.trigger import TriggerRequest, TriggerState, trigger_uid
from common.plugins.base import PollingTrigger, Trigger
from common.plugins.core.triggers import Schedule
from common.queue.base import (
    EXECUTOR,
    FLOWS,
    LOGS,
    TRIGGERS,
    Queue,
    Record,
    Subscription,
    worker_triggers_topic,
)
from common.repository.base import Repositories
from common.settings import Settings

from . import polling
from ._metrics import SCHEDULER_METRICS
from ._ownership import PartitionOwnership
from ._requests import REQUEST_TTL, RequestInbox, apply_request
from ._store import QueueRecord, TriggerStore, default_store
from .schedule import evaluate

log = logging.getLogger("lanner.scheduler")

CONSUMER_GROUP = "scheduler"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """No cyclic garbage collection while a bulk step allocates: loading 100,000 flows or
    evaluating 10,000 triggers makes millions of acyclic objects, and each collection of the
    oldest generation walked every flow already loaded (a quarter of the start-up time).

    ``freeze``: what is alive at the end (the flows just loaded) moves to the collector's
    permanent generation, so neither the first collection after the step nor any later one
    walks it again (refcounting still frees it; only a cycle among them would stay).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class _KnownFlow:
    tenant: str
    revision: int
    flow: Flow | None  # None: deleted, or a source that no longer parses


class Scheduler:
    """Evaluates the Schedule triggers of every deployed flow, once per ``tick_interval``.

    Args:
        queue: the queue (a ``SqliteQueue`` stores trigger states in the same database and
            transaction as the emitted executions).
        repositories: where the flows are read at start (``repositories.flows``).
        settings: ``settings.tenant`` is the tenant whose flows are loaded at start; flows of
            any tenant arrive through the ``flows`` topic.
        clock: returns the current aware datetime; tests pass a fake one.
        store: where trigger states live; by default chosen from the queue.
        tick_interval: seconds of real time between two ticks.
        tenants: tenants whose flows are loaded at start (default: ``[settings.tenant]``).
        ownership: on Kafka, the flows this replica owns (it then reads no repository).
    """

    def __init__(
        self,
        queue: Queue,
        repositories: Repositories,
        settings: Settings,
        clock: Callable[[], datetime] = _utcnow,
        *,
        store: TriggerStore | None = None,
        tick_interval: float = 1.0,
        tenants: Sequence[str] | None = None,
        ownership: PartitionOwnership | None = None,
        on_worker_group: Callable[[str], None] | None = None,
    ) -> None:
        self.queue = queue
        self.repositories = repositories
        self.settings = settings
        self.clock = clock
        self.store = store or default_store(queue)
        self.tick_interval = tick_interval
        self.tenants = list(tenants) if tenants else [settings.tenant]
        self.ownership = ownership
        self.lock_timeout = timedelta(seconds=settings.polling_trigger_lock_timeout_seconds)
        # called once per worker group a polling trigger is first sent to (Kafka: its topic)
        self.on_worker_group = on_worker_group
        self._groups_seen: set[str] = set()
        self._flows: dict[tuple[str, str, str], _KnownFlow] = {}
        self._states: dict[str, TriggerState] = {}
        self._recovered: set[str] = set()
        self._pending_deletes: set[str] = set()
        self._subscription: Subscription | None = None
        self._inbox: RequestInbox | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.ticks = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Load flows and trigger states, then tick in a daemon thread until ``stop``."""
        if self._thread is not None:
            return
        self.load()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="lanner-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the current tick and stop; the queue stays open (it belongs to the caller)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None
        if self.ownership is not None:
            self.ownership.close()

    def load(self) -> None:
        """Read the flows of ``tenants`` from the repository and the stored trigger states.

        ``start`` calls it; call it directly to drive the scheduler with ``tick`` alone.
        """
        with self._lock, _collector_paused(freeze=True):
            self._inbox = RequestInbox(self.queue, shared=self.ownership is not None)
            if self.ownership is not None:
                self._states = self.store.load()
                return
            for tenant in self.tenants:
                for record in self.repositories.flows.find(tenant):
                    self._apply_flow(
                        tenant, record.namespace, record.id, record.revision, record.source, False
                    )
            self._states = self.store.load()
            for uid, state in self._states.items():
                key = (state.tenant_id, state.namespace, state.flow_id)
                if state.tenant_id in self.tenants and key not in self._flows:
                    self._pending_deletes.add(uid)  # its flow was deleted while we were down
            self._subscription = self.queue.subscribe([FLOWS], CONSUMER_GROUP)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:  # keep ticking: a failing store or queue may come back
                log.exception("scheduler tick failed")
            self._stopping.wait(self.tick_interval)

    # ---------------------------------------------------------------- one tick

    def tick(self) -> int:
        """Read flow changes, evaluate every Schedule trigger now; return executions emitted."""
        with SCHEDULER_METRICS.tick.time(), self._lock, _collector_paused():
            if self.ownership is not None:
                self._sync_owned(self.ownership)
            else:
                self._read_flows()
            now = self.clock()
            touched: dict[str, TriggerState] = {}
            records: list[QueueRecord] = []
            handled = self._apply_requests(now, touched, records)
            evaluated = 0
            for key in sorted(self._flows):
                known = self._flows[key]
                if known.flow is None:
                    continue
                for trigger in known.flow.triggers:
                    if isinstance(trigger, Schedule):
                        evaluated += 1
                        self._evaluate(known, trigger, now, touched, records)
                    elif isinstance(trigger, PollingTrigger):
                        evaluated += 1
                        self._poll(known, trigger, now, touched, records)
            SCHEDULER_METRICS.evaluated.inc(evaluated)
            changed = list(touched.values())
            records.extend((TRIGGERS, state.uid, state.to_json()) for state in changed)
            deleted = sorted(self._pending_deletes)
            records.extend((TRIGGERS, uid, None) for uid in deleted)
            # after the states: a request is gone only once its effect is stored
            records.extend((TRIGGERS, key, None) for key in handled)
            try:
                if changed or deleted or records:
                    self.store.commit(changed, deleted, records)
            except Exception:
                self._states = self.store.load()  # forget what the failed commit did not store
                raise
            if self._inbox is not None:
                self._inbox.done(handled)
            for state in changed:
                self._states[state.uid] = state
            for uid in deleted:
                self._states.pop(uid, None)
            self._pending_deletes.clear()
            self.ticks += 1
            emitted = sum(1 for topic, _, _ in records if topic == EXECUTOR)
            SCHEDULER_METRICS.emitted.inc(emitted)
            SCHEDULER_METRICS.flows.set(len(self._flows))
            return emitted

    def _evaluate(
        self,
        known: _KnownFlow,
        trigger: Schedule,
        now: datetime,
        touched: dict[str, TriggerState],
        records: list[QueueRecord],
    ) -> None:
        assert known.flow is not None
        flow = known.flow
        uid = trigger_uid(known.tenant, flow.namespace, flow.id, trigger.id)
        recovering = uid not in self._recovered
        try:
            result = evaluate(
                flow,
                trigger,
                touched.get(uid) or self._states.get(uid),
                now,
                tenant_id=known.tenant,
                recovering=recovering,
            )
        except Exception:  # one broken trigger must not stop the others
            log.exception("evaluating trigger %s failed", uid)
            return
        self._recovered.add(uid)
        for entry in result.logs:
            getattr(log, "warning" if entry.level in ("WARN", "ERROR") else "info")(
                "%s: %s", uid, entry.message
            )
            records.append((LOGS, uid, entry.to_json()))
        for new in result.executions:
            records.append((EXECUTOR, new.execution_id, new.to_json()))
        if result.changed:
            touched[uid] = result.state

    def _poll(
        self,
        known: _KnownFlow,
        trigger: PollingTrigger,
        now: datetime,
        touched: dict[str, TriggerState],
        records: list[QueueRecord],
    ) -> None:
        """Send the polling trigger to a worker if due (and free its expired lock)."""
        assert known.flow is not None
        uid = trigger_uid(known.tenant, known.flow.namespace, known.flow.id, trigger.id)
        result = polling.due(
            known.flow,
            trigger,
            touched.get(uid) or self._states.get(uid),
            now,
            tenant=known.tenant,
            lock_timeout=self.lock_timeout,
            # embedded: the worker of a lock stored before this start died with the process
            orphaned=self.ownership is None and uid not in self._recovered,
        )
        self._recovered.add(uid)
        self._polling_records(uid, result, touched, records)
        if result.send is not None:
            group = trigger.worker_group.key if trigger.worker_group else None
            if group and group not in self._groups_seen and self.on_worker_group is not None:
                self.on_worker_group(group)
            if group:
                self._groups_seen.add(group)
            records.append((worker_triggers_topic(group), uid, result.send.to_json()))

    def _polling_records(
        self,
        uid: str,
        result: polling.PollingResult,
        touched: dict[str, TriggerState],
        records: list[QueueRecord],
    ) -> None:
        for entry in result.logs:
            log.warning("%s: %s", uid, entry.message)
            records.append((LOGS, uid, entry.to_json()))
        for new in result.executions:
            records.append((EXECUTOR, new.execution_id, new.to_json()))
        if result.state is not None:
            touched[uid] = result.state

    def _apply_polling(
        self,
        request: TriggerRequest,
        trigger: Trigger,
        now: datetime,
        touched: dict[str, TriggerState],
        records: list[QueueRecord],
    ) -> None:
        """A worker's answer or the executor's notice that the trigger's execution ended."""
        uid = request.uid
        state = touched.get(uid) or self._states.get(uid)
        if request.execution_ended is not None:
            unlocked = polling.on_execution_ended(state, request.execution_ended, now)
            if unlocked is not None:
                touched[uid] = unlocked
            return
        known = self._flows[(request.tenant_id, request.namespace, request.flow_id)]
        if request.evaluation is None or known.flow is None:
            return
        if not isinstance(trigger, PollingTrigger):
            return
        result = polling.on_evaluation(
            known.flow, trigger, state, request.evaluation, now, tenant=known.tenant
        )
        self._polling_records(uid, result, touched, records)

    def _apply_requests(
        self, now: datetime, touched: dict[str, TriggerState], records: list[QueueRecord]
    ) -> list[str]:
        """Merge the pending user requests of the flows evaluated here into their states;
        return the keys of the requests handled (applied, or dropped)."""
        if self._inbox is None:
            return []
        self._inbox.poll()
        handled: list[str] = []
        for request in self._inbox.requests():
            trigger = self._declared(request)
            if trigger is None and self.ownership is None:
                # a flow deployed just before the request, announced after this tick read flows
                self._read_flows()
                trigger = self._declared(request)
            if trigger is None:
                if self.ownership is None or now - request.date > REQUEST_TTL:
                    self._drop(request, records)
                    handled.append(request.key)
                continue  # on Kafka: another replica's flow, or one this replica learns later
            uid = request.uid
            if request.evaluation is not None or request.execution_ended is not None:
                self._apply_polling(request, trigger, now, touched, records)
                handled.append(request.key)
                continue
            try:
                state = apply_request(
                    touched.get(uid) or self._states.get(uid), request, trigger, now
                )
            except ValueError as exc:  # a cron that never matches: the request cannot apply
                log.warning("trigger request %s for %s not applied: %s", request.id, uid, exc)
                state = None
            if state is not None:
                touched[uid] = state
                log.info("%s: applied the request %s from %s", uid, request.id, request.source)
            handled.append(request.key)
        return handled

    def _declared(self, request: TriggerRequest) -> Trigger | None:
        known = self._flows.get((request.tenant_id, request.namespace, request.flow_id))
        if known is None or known.flow is None:
            return None
        return next((t for t in known.flow.triggers if t.id == request.trigger_id), None)

    def _drop(self, request: TriggerRequest, records: list[QueueRecord]) -> None:
        from common.models.messages import LogEntry

        message = (
            f"Request {request.id} from {request.source} ignored: no scheduler knows a trigger "
            f"'{request.trigger_id}' of flow {request.namespace}.{request.flow_id}"
        )
        log.warning("%s", message)
        entry = LogEntry(
            tenant_id=request.tenant_id,
            namespace=request.namespace,
            flow_id=request.flow_id,
            trigger_id=request.trigger_id,
            timestamp=request.date,
            level="WARN",
            message=message,
        )
        records.append((LOGS, request.uid, entry.to_json()))

    # ---------------------------------------------------------------- flows

    def _sync_owned(self, ownership: PartitionOwnership) -> None:
        moved, changed = ownership.poll()
        if not (moved or changed):
            return
        live, deleted = ownership.owned()
        owned = {(r.tenant_id, r.namespace, r.id): r for r in live}
        for key in [k for k in self._flows if k not in owned]:
            if key in deleted:
                self._forget(key, None)
            else:
                self._release(key)
        if moved:
            # what the previous owners stored, up to their last tick
            self._states = self.store.load()
            for uid, state in self._states.items():
                if (state.tenant_id, state.namespace, state.flow_id) in deleted:
                    self._pending_deletes.add(uid)  # deleted while no replica owned it
            log.info("scheduler owns %s: %d flows", ownership.describe(), len(owned))
        for key, record in owned.items():
            known = self._flows.get(key)
            if known is None or known.revision != record.revision:
                self._apply_flow(*key, record.revision, record.source, True)

    def _release(self, key: tuple[str, str, str]) -> None:
        """The flow's partition went to another replica: stop evaluating it, keep its states."""
        known = self._flows.pop(key)
        for trigger in known.flow.triggers if known.flow else []:
            self._recovered.discard(trigger_uid(*key, trigger.id))

    def _read_flows(self) -> None:
        if self._subscription is None:
            return
        while True:
            batch = self._subscription.poll(max_records=500, timeout=0)
            if not batch:
                return
            for record in batch:
                self._on_flow_record(record)
            self._subscription.commit(batch)

    def _on_flow_record(self, record: Record) -> None:
        key_parts = (record.key or "").split("/")
        if record.value is None:  # tombstone
            if len(key_parts) == 3:
                self._forget(tuple(key_parts), None)  # type: ignore[arg-type]
            return
        try:
            data = json.loads(record.value)
            tenant = str(data.get("tenant") or self.settings.tenant)
            revision = int(data.get("revision") or 0)
            source = data.get("source") or ""
            namespace = data.get("namespace")
            flow_id = data.get("id")
        except (ValueError, TypeError, AttributeError):
            log.warning("ignoring an unreadable record on the flows topic (key %s)", record.key)
            return
        if not namespace or not flow_id:
            if len(key_parts) != 3:
                return
            _, namespace, flow_id = key_parts
        if data.get("deleted"):
            self._forget((tenant, namespace, flow_id), revision)
        else:
            self._apply_flow(tenant, namespace, flow_id, revision, source, True)

    def _apply_flow(
        self, tenant: str, namespace: str, flow_id: str, revision: int, source: str, live: bool
    ) -> None:
        key = (tenant, namespace, flow_id)
        known = self._flows.get(key)
        if known is not None and known.revision > revision:
            return  # an older revision replayed after a newer one was loaded
        try:
            flow: Flow | None = parse_flow(
                source, stored={"revision": revision, "tenantId": tenant}
            )
        except (LannerError, ValueError) as exc:
            log.warning("flow %s.%s rev %s unschedulable: %s", namespace, flow_id, revision, exc)
            flow = None
        if known is not None and known.flow is not None:
            # a trigger removed, or whose type changed, loses its state
            kept = {t.id: type(t) for t in (flow.triggers if flow else [])}
            for trigger in known.flow.triggers:
                uid = trigger_uid(tenant, namespace, flow_id, trigger.id)
                if kept.get(trigger.id) is not type(trigger) and self._has_state(trigger, uid):
                    self._pending_deletes.add(uid)
        for trigger in flow.triggers if flow else []:
            self._pending_deletes.discard(trigger_uid(tenant, namespace, flow_id, trigger.id))
        self._flows[key] = _KnownFlow(tenant=tenant, revision=revision, flow=flow)

    def _forget(self, key: tuple[str, str, str], revision: int | None) -> None:
        known = self._flows.get(key)
        if known is None:
            return
        if revision is not None and known.revision > revision:
            return  # deleted, then deployed again with a newer revision
        tenant, namespace, flow_id = key
        for trigger in known.flow.triggers if known.flow else []:
            uid = trigger_uid(tenant, namespace, flow_id, trigger.id)
            if self._has_state(trigger, uid):
                self._pending_deletes.add(uid)
        del self._flows[key]

    def _has_state(self, trigger: object, uid: str) -> bool:
        """Schedule triggers have a state; others only once a user request changed them."""
        return isinstance(trigger, Schedule | PollingTrigger) or uid in self._states

    # ---------------------------------------------------------------- inspection

    def describe_partitions(self) -> str:
        return self.ownership.describe() if self.ownership is not None else "every flow"

    def states(self) -> dict[str, TriggerState]:
        """A copy of the current trigger states by uid (for health checks and tests)."""
        with self._lock:
            return dict(self._states)
