"""A namespace's key-value store (Kestra's ``KVController``, ``/api/v1/namespaces/{ns}/kv``).

The store lives in internal storage (``common.storage.kv``), so the webserver reads and writes it
directly, on every backend. Shapes are Kestra's: a list of ``KVEntry`` (``key``, ``creationDate``,
``updateDate``, ``expirationDate``), a value as ``{"type", "value"}``, ``PUT`` with the value as
text (typed as Kestra's Ion reader types it) and an optional ``ttl`` header (ISO-8601 duration),
``DELETE`` answering a boolean, and a bulk delete answering ``{"keys": [deleted keys]}``. A bad
key or namespace is a 422 naming the field; an expired value is a 410, as in Kestra.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from common.errors import InputValidationError, NotFoundError, Problem
from common.storage.kv import EXPIRED, KVStore, parse_body, validate_key
from webserver.deps import BackendsDep, TenantDep

router = APIRouter(tags=["KV"])


class KVEntryModel(BaseModel):
    key: str
    creationDate: str  # noqa: N815 - Kestra's names
    updateDate: str  # noqa: N815
    expirationDate: str | None  # noqa: N815


class TypedValueModel(BaseModel):
    type: str
    value: Any


class DeleteBulk(BaseModel):
    keys: list[str] = []


def _store(backends: Any, tenant: str, namespace: str) -> KVStore:
    return KVStore(backends.storage, tenant, namespace)


@router.get(
    "/namespaces/{namespace}/kv",
    summary="List all keys for a namespace",
    response_model=list[KVEntryModel],
)
async def list_keys(namespace: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    def run() -> list[dict[str, Any]]:
        return [entry.to_json() for entry in _store(backends, tenant, namespace).list()]

    return await anyio.to_thread.run_sync(run)


@router.get(
    "/namespaces/{namespace}/kv/{key}",
    summary="Get value for a key",
    response_model=TypedValueModel,
)
async def get_value(namespace: str, key: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    found = await anyio.to_thread.run_sync(_store(backends, tenant, namespace).get_value, key)
    if found is EXPIRED:
        return JSONResponse(
            {"message": "Resource has expired: The requested value has expired"}, status_code=410
        )
    if found is None:
        raise NotFoundError(f"No value found for key '{key}' in namespace '{namespace}'")
    return {"type": found.type, "value": found.value}  # type: ignore[union-attr]


@router.put(
    "/namespaces/{namespace}/kv/{key}",
    summary="Puts a key-value pair in store",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "string"}},
            },
        }
    },
)
async def put_value(
    namespace: str,
    key: str,
    request: Request,
    backends: BackendsDep,
    tenant: TenantDep,
    ttl: str | None = Header(default=None, description="ISO-8601 time to live (PT5M)"),
) -> None:
    from common.flow.durations import parse_iso_duration

    store = _store(backends, tenant, namespace)
    validate_key(key)
    text = (await request.body()).decode("utf-8", errors="replace")
    try:
        value = parse_body(text)
    except ValueError as exc:
        raise InputValidationError([Problem("body", str(exc))]) from exc
    try:
        duration = parse_iso_duration(ttl) if ttl else None
    except ValueError as exc:
        raise InputValidationError([Problem("ttl", str(exc))]) from exc
    if duration is not None and duration.total_seconds() < 0:
        raise InputValidationError([Problem("ttl", "ttl cannot be negative")])

    def run() -> None:
        store.put(key, value, ttl=duration)

    await anyio.to_thread.run_sync(run)


@router.delete("/namespaces/{namespace}/kv/{key}", summary="Delete a key-value pair")
async def delete_key(namespace: str, key: str, backends: BackendsDep, tenant: TenantDep) -> bool:
    return await anyio.to_thread.run_sync(_store(backends, tenant, namespace).delete, key)


@router.delete(
    "/namespaces/{namespace}/kv",
    summary="Bulk-delete multiple key/value pairs from the given namespace.",
    response_model=DeleteBulk,
)
async def delete_keys(
    namespace: str,
    backends: BackendsDep,
    tenant: TenantDep,
    request: DeleteBulk = Body(default_factory=DeleteBulk),  # noqa: B008
) -> Any:
    store = _store(backends, tenant, namespace)
    for index, key in enumerate(request.keys):
        try:
            validate_key(key)
        except InputValidationError as exc:
            raise InputValidationError(
                [Problem(f"keys[{index}]", p.message) for p in exc.problems]
            ) from exc

    def run() -> list[str]:
        return [key for key in request.keys if store.delete(key)]

    return {"keys": await anyio.to_thread.run_sync(run)}
