"""Flows: create, update, read, revisions, delete, search and validate (Kestra's paths).

Writes go to the flow repository directly and are announced on the ``flows`` topic (key
``tenant/namespace/id``) so that the executor and the scheduler learn about them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import anyio.to_thread
import yaml
from fastapi import APIRouter, Query, Request, Response

from common.backends import Backends
from common.errors import ConflictError, FlowValidationError, NotFoundError, Problem
from common.flow.parser import parse_flow
from common.flow.store import flow_event, flow_key, save_flow
from common.models.flow import Flow
from common.queue.base import FLOWS
from common.repository.base import FlowRecord
from webserver.deps import BackendsDep, TenantDep
from webserver.errors import problem_json

router = APIRouter(tags=["flows"])

_YAML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/x-yaml": {"schema": {"type": "string"}}},
    }
}
_DOC_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


async def read_source(request: Request) -> str:
    body = await request.body()
    try:
        source = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FlowValidationError([Problem("", "the flow source is not UTF-8 text")]) from None
    if not source.strip():
        raise FlowValidationError([Problem("", "empty body: send the flow's YAML source")])
    return source


def flow_json(record: FlowRecord, flow: Flow | None = None) -> dict[str, Any]:
    """The flow as JSON (Kestra's ``FlowWithSource``): its properties, revision and source."""
    body: dict[str, Any]
    if flow is None:
        try:
            flow = parse_flow(record.source)
        except FlowValidationError:
            flow = None
    if flow is not None:
        body = flow.model_dump(mode="json", by_alias=True, exclude_none=True)
    else:  # stored before a plugin went away: show what was written
        try:
            loaded = yaml.safe_load(record.source)
        except yaml.YAMLError:
            loaded = None
        body = loaded if isinstance(loaded, dict) else {}
    body.update(
        {
            "id": record.id,
            "namespace": record.namespace,
            "tenantId": record.tenant_id,
            "revision": record.revision,
            "deleted": record.deleted,
            "disabled": record.disabled,
            "updated": record.updated.isoformat(),
            "source": record.source,
        }
    )
    return body


def load_flow(backends: Backends, tenant: str, namespace: str, flow_id: str) -> FlowRecord:
    record = backends.repositories.flows.get(tenant, namespace, flow_id)
    if record is None:
        raise NotFoundError(f"flow {namespace}.{flow_id} not found")
    return record


@router.post("/flows", openapi_extra=_YAML_BODY, summary="Create a flow from its YAML source")
async def create_flow(request: Request, backends: BackendsDep, tenant: TenantDep) -> Any:
    source = await read_source(request)
    flow = parse_flow(source, check_templates=True)

    def create() -> dict[str, Any]:
        if backends.repositories.flows.get(tenant, flow.namespace, flow.id) is not None:
            raise ConflictError(
                f"flow {flow.namespace}.{flow.id} already exists: update it with "
                f"PUT /api/v1/flows/{flow.namespace}/{flow.id}"
            )
        return flow_json(save_flow(backends, tenant, flow, source), flow)

    return await anyio.to_thread.run_sync(create)


@router.post("/flows/validate", openapi_extra=_YAML_BODY, summary="Validate flow sources")
async def validate_flows(request: Request) -> list[dict[str, Any]]:
    """Every YAML document of the body (separated by ``---``) checked; 200 even if invalid."""
    body = (await request.body()).decode("utf-8", errors="replace")
    results = []
    for index, (offset, document) in enumerate(_documents(body)):
        results.append(_validate_one(index, offset, document))
    return results


def _documents(body: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    start = 0
    line_offset = 0
    for match in _DOC_SEPARATOR.finditer(body):
        out.append((line_offset, body[start : match.start()]))
        line_offset = body.count("\n", 0, match.end()) + 1
        start = match.end() + 1
    out.append((line_offset, body[start:]))
    return [(o, d) for o, d in out if d.strip()] or [(0, body)]


def _validate_one(index: int, line_offset: int, document: str) -> dict[str, Any]:
    result: dict[str, Any] = {"index": index, "outdated": False, "deprecationPaths": []}
    try:
        loaded = yaml.safe_load(document)
    except yaml.YAMLError:
        loaded = None
    if isinstance(loaded, dict):
        result["flow"] = loaded.get("id")
        result["namespace"] = loaded.get("namespace")
    try:
        parse_flow(document, check_templates=True)
    except FlowValidationError as exc:
        problems = [
            Problem(p.path, p.message, None if p.line is None else p.line + line_offset)
            for p in exc.problems
        ]
        result["constraints"] = "\n".join(str(p) for p in problems)
        result["errors"] = [problem_json(p) for p in problems]
    return result


@router.get("/flows/search", summary="Search flows")
async def search_flows(
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str | None = None,
    q: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=1000)] = 25,
) -> dict[str, Any]:
    records = await anyio.to_thread.run_sync(
        lambda: backends.repositories.flows.find(tenant, namespace=namespace, q=q)
    )
    chosen = records[(page - 1) * size : page * size]
    return {"results": [flow_json(r) for r in chosen], "total": len(records)}


@router.get("/flows/{namespace}", summary="Flows of a namespace (and its sub-namespaces)")
async def list_namespace(namespace: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    records = await anyio.to_thread.run_sync(
        lambda: backends.repositories.flows.find(tenant, namespace=namespace)
    )
    return [flow_json(r) for r in records]


@router.get("/flows/{namespace}/{flow_id}", summary="Get a flow")
async def get_flow(
    namespace: str,
    flow_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    revision: Annotated[int | None, Query(ge=1)] = None,
    source: bool = False,
) -> Any:
    def read() -> dict[str, Any]:
        record = backends.repositories.flows.get(tenant, namespace, flow_id, revision)
        if record is None:
            what = f" revision {revision}" if revision else ""
            raise NotFoundError(f"flow {namespace}.{flow_id}{what} not found")
        return flow_json(record)

    return await anyio.to_thread.run_sync(read)


@router.get("/flows/{namespace}/{flow_id}/revisions", summary="Every revision of a flow")
async def flow_revisions(
    namespace: str, flow_id: str, backends: BackendsDep, tenant: TenantDep
) -> Any:
    records = await anyio.to_thread.run_sync(
        lambda: backends.repositories.flows.revisions(tenant, namespace, flow_id)
    )
    if not records:
        raise NotFoundError(f"flow {namespace}.{flow_id} not found")
    return [flow_json(r) for r in records]


@router.put(
    "/flows/{namespace}/{flow_id}", openapi_extra=_YAML_BODY, summary="Update a flow (new revision)"
)
async def update_flow(
    namespace: str, flow_id: str, request: Request, backends: BackendsDep, tenant: TenantDep
) -> Any:
    source = await read_source(request)
    flow = parse_flow(source, check_templates=True)
    problems = []
    if flow.namespace != namespace:
        problems.append(
            Problem("namespace", f"the source says '{flow.namespace}', the URL '{namespace}'")
        )
    if flow.id != flow_id:
        problems.append(Problem("id", f"the source says '{flow.id}', the URL '{flow_id}'"))
    if problems:
        raise FlowValidationError(problems)

    def update() -> dict[str, Any]:
        load_flow(backends, tenant, namespace, flow_id)
        return flow_json(save_flow(backends, tenant, flow, source), flow)

    return await anyio.to_thread.run_sync(update)


@router.delete("/flows/{namespace}/{flow_id}", status_code=204, summary="Delete a flow")
async def delete_flow(
    namespace: str, flow_id: str, backends: BackendsDep, tenant: TenantDep
) -> Response:
    def delete() -> None:
        record = load_flow(backends, tenant, namespace, flow_id)
        backends.repositories.flows.delete(tenant, namespace, flow_id)
        backends.queue.emit(
            FLOWS, flow_key(tenant, namespace, flow_id), flow_event(record, deleted=True)
        )
        if backends.flows is not None:
            backends.flows.sync()  # this webserver's next creation sees the deletion

    await anyio.to_thread.run_sync(delete)
    return Response(status_code=204)
