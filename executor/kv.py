"""``kv()`` in the properties the executor renders, with a pure core.

Kestra's ``kv(key, namespace?, errorOnMissing?)`` reads the KV store wherever a template is
rendered, the executor's conditions and values included (``runIf``, ``If.condition``,
``Switch.value``, subflow inputs, flow outputs...). The core does no I/O, so it never reads
the store: it renders with a *snapshot*, a plain map ``(namespace, key) -> KVRead`` its caller
gives, and a key it needed but did not find in it goes to ``StepResult.kv_missing``.

``step_with_kv`` is what the shells call: for a flow that mentions ``kv(`` it runs the step on
a copy of the state, reads the keys the step missed through the KV store (internal storage,
which every executor shell already uses for offloaded records) and runs the step again with
them, until no key is missing. The step stays a function of its arguments (the snapshot is
one of them); a flow without ``kv(`` costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.models.flow import Flow

KVKey = tuple[str, str]  # (namespace, key)
MAX_PASSES = 8  # a key read depends on another key's value: a chain this long at most


@dataclass(frozen=True)
class KVRead:
    """One key as the store answered: ``found`` and its ``value``, or the store's ``error``."""

    found: bool
    value: Any = None
    error: str | None = None


KVReader = Callable[[str, str, str, datetime], KVRead]  # (tenant, namespace, key, now)


@dataclass
class KVSnapshot:
    """KV entries given to a pure evaluation, and the keys it wanted but did not find."""

    entries: dict[KVKey, KVRead] = field(default_factory=dict)
    missing: set[KVKey] = field(default_factory=set)

    def functions(self, namespace: str) -> dict[str, Callable[..., Any]]:
        from common.templating._functions import kv_function

        return {"kv": kv_function(snapshot_reader(self.entries, namespace, self.missing))}


def snapshot_reader(
    snapshot: Mapping[KVKey, KVRead] | None, default_namespace: str, missing: set[KVKey]
) -> Callable[[str | None, str], tuple[bool, Any, str]]:
    """The ``read`` of ``common.templating._functions.kv_function`` on a snapshot: a key
    absent from it is recorded in ``missing`` and reads as missing for this pass."""
    from common.errors import TemplateError
    from common.storage.kv import validate_key, validate_namespace

    def read(namespace: str | None, key: str) -> tuple[bool, Any, str]:
        where = validate_namespace(namespace or default_namespace)
        wanted = (where, validate_key(key))
        found = (snapshot or {}).get(wanted)
        if found is None:
            missing.add(wanted)
            return False, None, where
        if found.error is not None:
            raise TemplateError(f"function 'kv': {found.error}")
        return found.found, found.value, where

    return read


def storage_reader(storage: Any) -> KVReader:
    """Reads through ``common.storage.kv.KVStore`` on the internal storage (``now`` decides
    expiry, as the worker's clock does for tasks)."""
    from common.storage.kv import KVStore

    def read(tenant: str, namespace: str, key: str, now: datetime) -> KVRead:
        missing = object()
        try:
            value = KVStore(storage, tenant, namespace, now=lambda: now).value(key, missing)
        except Exception as exc:  # noqa: BLE001 - the store's failure becomes the render's
            return KVRead(False, error=f"{type(exc).__name__}: {exc}")
        return KVRead(False) if value is missing else KVRead(True, value)

    return read


_USES: dict[int, tuple[Flow, bool]] = {}


def uses_kv(flow: Flow | None) -> bool:
    """Whether the flow's definition mentions ``kv(`` anywhere (cached per flow object)."""
    if flow is None:
        return False
    cached = _USES.get(id(flow))
    if cached is not None and cached[0] is flow:
        return cached[1]
    found = "kv(" in flow.model_dump_json()
    if len(_USES) > 512:
        _USES.clear()
    _USES[id(flow)] = (flow, found)
    return found


def step_with_kv(
    flow: Flow | None,
    state: Any,
    event: Any,
    now: datetime,
    config: Any,
    *,
    running_count: int | None,
    owned: bool,
    read: KVReader | None,
    step: Callable[..., Any] | None = None,
) -> Any:
    """``step`` (``core.step``; a shell passes the one it imported) with the KV keys its
    renders need (see the module's docstring)."""
    if step is None:
        from .core import step
    if read is None or not uses_kv(flow):
        return step(flow, state, event, now, config, running_count=running_count, owned=owned)
    execution = state.execution if state is not None else getattr(event, "execution", None)
    tenant = (getattr(execution, "tenant_id", None) or "main") if execution else "main"
    snapshot: dict[KVKey, KVRead] = {}
    for _ in range(MAX_PASSES):
        result = step(
            flow, state, event, now, config, running_count=running_count, owned=False, kv=snapshot
        )
        missing = result.kv_missing - snapshot.keys()
        if not missing:
            return result
        for namespace, key in sorted(missing):
            snapshot[(namespace, key)] = read(tenant, namespace, key, now)
    return step(
        flow, state, event, now, config, running_count=running_count, owned=owned, kv=snapshot
    )


def flow_trigger_kv(
    flows: Iterable[Flow],
    execution: Any,
    previous: Any,
    now: datetime,
    windows: Any,
    disabled: Collection[str],
    read: KVReader | None,
) -> KVSnapshot | None:
    """The KV entries the Flow triggers of ``flows`` read (``kv()`` in ``expression``
    conditions, ``preconditions.where`` expressions, trigger ``inputs``) for this state change;
    None when none of them mentions ``kv(``. ``flow_triggers.evaluate`` runs on a scratch copy
    of those flows' windows (it changes windows in place) until no key is missing."""
    from .flow_triggers import Windows, evaluate

    using = [flow for flow in flows if uses_kv(flow)]
    if read is None or not using:
        return None
    prefixes = tuple(f"{f.tenant_id or 'main'}/{f.namespace}/{f.id}/" for f in using)
    tenant = getattr(execution, "tenant_id", None) or "main"
    snapshot = KVSnapshot()
    for _ in range(MAX_PASSES):
        scratch = Windows(
            windows={
                key: window.model_copy(deep=True)
                for key, window in windows.windows.items()
                if key.startswith(prefixes)
            }
        )
        snapshot.missing = set()
        evaluate(using, execution, previous, now, scratch, disabled, kv=snapshot)
        missing = snapshot.missing - snapshot.entries.keys()
        if not missing:
            break
        for namespace, key in sorted(missing):
            snapshot.entries[(namespace, key)] = read(tenant, namespace, key, now)
    snapshot.missing = set()
    return snapshot
