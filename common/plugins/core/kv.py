"""Core plugins: the namespace's key-value store (Kestra's ``io.kestra.plugin.core.kv.Set``,
``Get``, ``GetKeys``, ``Delete``), read in templates with ``{{ kv('key') }}``.

The store is ``common.storage.kv.KVStore`` on the worker's internal storage. ``namespace``
defaults to the flow's (Kestra's ``{{ flow.namespace }}``); Kestra's open-source edition lets a
flow reach any namespace, so does Lanner. An expired entry reads as missing (Kestra #12294).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from pydantic import Field

from common.errors import LannerError
from common.plugins.base import RunContext, RunnableTask
from common.plugins.dynamic import DynamicBool, DynamicDuration, resolve
from common.storage.kv import KV_TYPES, KVConflict, KVStore, convert

from ._support import TaskFailed, worker_context

_DEFAULT_NAMESPACE = "{{ flow.namespace }}"


def _store(ctx: RunContext, namespace: str) -> KVStore:
    rendered = str(ctx.render(namespace))
    try:
        return worker_context(ctx).kv_store(rendered)
    except LannerError as exc:
        raise TaskFailed(str(exc)) from exc


def _key(ctx: RunContext, key: str) -> str:
    from common.storage.kv import validate_key

    rendered = str(ctx.render(key))
    try:
        return validate_key(rendered)
    except LannerError as exc:
        raise TaskFailed(str(exc)) from exc


class Set(RunnableTask):
    """Creates or replaces the value of a key; ``kvType`` converts a text value (NUMBER,
    BOOLEAN, DATETIME, DATE, DURATION, JSON), ``ttl`` makes it expire, ``overwrite: false``
    fails when the key exists. No outputs, as Kestra's (``VoidOutput``)."""

    TYPE: ClassVar[str] = "lanner.core.kv.Set"
    key: str
    value: Any
    namespace: str = _DEFAULT_NAMESPACE
    overwrite: DynamicBool = True
    ttl: DynamicDuration | None = None
    kv_type: str | None = Field(default=None, alias="kvType")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        store = _store(ctx, self.namespace)
        key = _key(ctx, self.key)
        raw = self.value
        # Kestra's ``value`` is a String property: YAML scalars arrive as their text
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        elif isinstance(raw, int | float):
            raw = str(raw)
        value = ctx.render_typed(raw)
        kv_type = str(ctx.render(self.kv_type)).upper() if self.kv_type else None
        if kv_type is not None:
            if kv_type not in KV_TYPES:
                raise TaskFailed(f"kvType must be one of {', '.join(KV_TYPES)}, not '{kv_type}'")
            try:
                value = convert(value, kv_type)
            except ValueError as exc:
                raise TaskFailed(f"Cannot set key '{key}': {exc}") from exc
        ttl: timedelta | None = resolve(self.ttl, ctx.render_typed)
        try:
            store.put(
                key,
                value,
                ttl=ttl,
                overwrite=bool(resolve(self.overwrite, ctx.render_typed)),
            )
        except (KVConflict, ValueError) as exc:
            raise TaskFailed(str(exc)) from exc
        return {}


class Get(RunnableTask):
    """Outputs the ``value`` of a key (null when missing, or a failure with
    ``errorOnMissing: true``), typed as it was set."""

    TYPE: ClassVar[str] = "lanner.core.kv.Get"
    key: str
    namespace: str = _DEFAULT_NAMESPACE
    error_on_missing: DynamicBool = Field(default=False, alias="errorOnMissing")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        store = _store(ctx, self.namespace)
        key = _key(ctx, self.key)
        missing = object()
        value = store.value(key, missing)
        if value is missing:
            if resolve(self.error_on_missing, ctx.render_typed):
                raise TaskFailed(
                    f"No value found for key '{key}' in namespace '{store.namespace}' and "
                    "`errorOnMissing` is set to true"
                )
            value = None
        return {"value": value}


class GetKeys(RunnableTask):
    """Outputs the ``keys`` of the namespace (unexpired), those starting with ``prefix`` when
    it is set."""

    TYPE: ClassVar[str] = "lanner.core.kv.GetKeys"
    prefix: str | None = None
    namespace: str = _DEFAULT_NAMESPACE

    def run(self, ctx: RunContext) -> dict[str, Any]:
        store = _store(ctx, self.namespace)
        prefix = str(ctx.render(self.prefix)) if self.prefix is not None else ""
        return {"keys": [e.key for e in store.list() if e.key.startswith(prefix)]}


class Delete(RunnableTask):
    """Deletes a key; outputs ``deleted`` (false when there was none, or a failure with
    ``errorOnMissing: true``)."""

    TYPE: ClassVar[str] = "lanner.core.kv.Delete"
    key: str
    namespace: str = _DEFAULT_NAMESPACE
    error_on_missing: DynamicBool = Field(default=False, alias="errorOnMissing")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        store = _store(ctx, self.namespace)
        key = _key(ctx, self.key)
        deleted = store.delete(key)
        if not deleted and resolve(self.error_on_missing, ctx.render_typed):
            raise TaskFailed(
                f"No value found for key '{key}' in namespace '{store.namespace}' and "
                "`errorOnMissing` is set to true"
            )
        return {"deleted": deleted}


PLUGINS: list[type] = [Set, Get, GetKeys, Delete]
