"""Kestra's namespaces, as the open-source edition has them: the namespaces of the deployed
flows and their parents (``company.team`` makes ``company`` too). ``GET /namespaces/search``,
``GET /namespaces/{id}``, ``POST /namespaces/autocomplete``,
``GET /namespaces/{id}/inherited-variables`` (empty: namespace variables are an Enterprise
feature).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from common.backends import Backends
from common.errors import NotFoundError
from webserver.deps import BackendsDep, TenantDep

router = APIRouter(tags=["namespaces"])


def namespaces(backends: Backends, tenant: str, existing_only: bool = False) -> list[str]:
    """Sorted namespaces of the tenant's flows (with their parents unless ``existing_only``)."""
    found: set[str] = set()
    for record in backends.repositories.flows.find(tenant):
        parts = record.namespace.split(".")
        if existing_only:
            found.add(record.namespace)
        else:
            found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(found)


def namespace_json(namespace: str) -> dict[str, Any]:
    return {"id": namespace, "deleted": False}


@router.get("/namespaces/search", summary="Search namespaces")
async def search_namespaces(
    backends: BackendsDep,
    tenant: TenantDep,
    q: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=1000)] = 10,
    existing: bool = False,
    sort: str | None = None,
) -> dict[str, Any]:
    found = await anyio.to_thread.run_sync(namespaces, backends, tenant, existing)
    if q:
        found = [n for n in found if q.lower() in n.lower()]
    if sort and sort.endswith(":desc"):
        found.reverse()
    start = (page - 1) * size
    return {
        "results": [namespace_json(n) for n in found[start : start + size]],
        "total": len(found),
    }


class Autocomplete(BaseModel):
    """Kestra's ``ApiAutocomplete``."""

    model_config = ConfigDict(populate_by_name=True)
    q: str | None = None
    ids: list[str] | None = None
    existing_only: bool = Field(default=False, alias="existingOnly")


@router.post("/namespaces/autocomplete", summary="Namespaces matching a text, for autocomplete")
async def autocomplete(body: Autocomplete, backends: BackendsDep, tenant: TenantDep) -> list[str]:
    found = await anyio.to_thread.run_sync(namespaces, backends, tenant, body.existing_only)
    if body.ids:
        return [n for n in found if n in body.ids]
    return [n for n in found if not body.q or body.q.lower() in n.lower()]


@router.get("/namespaces/{namespace_id}", summary="A namespace")
async def get_namespace(namespace_id: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    found = await anyio.to_thread.run_sync(namespaces, backends, tenant, False)
    if namespace_id not in found:
        raise NotFoundError(f"namespace '{namespace_id}' not found")
    return namespace_json(namespace_id)


@router.get("/namespaces/{namespace_id}/inherited-variables", summary="Inherited variables")
async def inherited_variables(namespace_id: str) -> dict[str, Any]:
    return {}
