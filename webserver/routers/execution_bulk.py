"""Kestra's bulk orders (``/executions/{kill,restart,replay,resume,pause,unqueue,force-run,labels}/
by-ids|by-query``, ``DELETE /executions/by-ids|by-query``) and the execution listings of
Kestra's current API (``GET /executions?namespace=&flowId=``, ``/executions/namespaces``,
``/executions/namespaces/{namespace}/flows``).

A bulk order checks every execution first: when one does not qualify nothing is sent and the
answer is 400 with Kestra's ``BulkErrorResponse`` (``message``, ``invalids``: one
``{invalidValue, message}`` per refused execution). Otherwise every order is sent and the
answer is Kestra 2.0's ``ApiAsyncOperationResponse`` (202, ``operationId``, ``totalItems``)
with ``count`` too, the ``BulkResponse`` field older clients read. Delete answers
``BulkResponse`` (200), or 422 with the refusals, as Kestra.

``by-query`` takes the older query parameters (``q``, ``namespace``, ``flowId``, ``state``,
``labels``, ``startDate``, ``endDate``) and Kestra's ``filters[field][OPERATION]=value``
(fields ``q``, ``namespace``, ``flowId``, ``state``, ``labels``, ``startDate``, ``endDate``,
``parentId``); other filters are refused (400). At most 10,000 executions per call.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from common.backends import Backends
from common.errors import Problem, QueryError
from common.flow.parser import parse_flow
from common.ids import new_id
from common.models.execution import Execution, Label
from common.models.state import State
from common.repository.base import MAX_PAGE_SIZE, MAX_RESULT_WINDOW, ExecutionQuery
from common.storage.base import execution_folders
from webserver import _orders
from webserver.deps import BackendsDep, TenantDep
from webserver.routers.execution_actions import apply, flow_of_execution, kestra_json
from webserver.routers.executions import parse_labels
from webserver.routers.flows import flow_json

router = APIRouter(tags=["executions"])

Rule = Callable[[Execution], _orders.Decision]


# ---------------------------------------------------------------- listings


@router.get("/executions", summary="Executions of a flow (Kestra's searchExecutionsByFlowId)")
async def executions_of_flow(
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str,
    flow_id: Annotated[str, Query(alias="flowId")],
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
) -> dict[str, Any]:
    query = ExecutionQuery(
        tenant_id=tenant, namespace=namespace, flow_id=flow_id, page=page, size=size
    )
    # the repository matches a namespace prefix: a flow of the same id in a sub-namespace is
    # found too (Kestra's parameter is the exact namespace)
    found = await anyio.to_thread.run_sync(backends.repositories.executions.search, query)
    return {"results": [kestra_json(e) for e in found.results], "total": found.total}


@router.get("/executions/namespaces", summary="Namespaces that hold flows one can execute")
async def executable_namespaces(backends: BackendsDep, tenant: TenantDep) -> list[str]:
    records = await anyio.to_thread.run_sync(backends.repositories.flows.find, tenant)
    return sorted({r.namespace for r in records})


@router.get("/executions/namespaces/{namespace}/flows", summary="Flows of a namespace to execute")
async def executable_flows(namespace: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    records = await anyio.to_thread.run_sync(backends.repositories.flows.find, tenant, namespace)
    out = []
    for record in sorted(records, key=lambda r: r.id):
        if record.namespace == namespace:
            out.append(flow_json(record, parse_flow(record.source)))
    return out


# ---------------------------------------------------------------- selecting executions

_FILTER = re.compile(r"^filters\[(\w+)\]\[(\w+)\](?:\[([^\]]*)\])?$")
_PREFIX_OPS = ("EQUALS", "PREFIX", "STARTS_WITH")


def _date(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError([Problem(name, f"'{value}' is not an ISO date-time")]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def query_of(request: Request, tenant: str) -> tuple[ExecutionQuery, str | None]:
    """The search a by-query call means, and the exact namespace asked (the repository
    matches prefixes)."""
    params = request.query_params
    fields: dict[str, Any] = {
        "namespace": params.get("namespace"),
        "flow_id": params.get("flowId"),
        "q": params.get("q"),
        "states": [State(s) for s in params.getlist("state")],
        "labels": parse_labels(params.getlist("labels")),
        "start_date": _date(params["startDate"], "startDate") if "startDate" in params else None,
        "end_date": _date(params["endDate"], "endDate") if "endDate" in params else None,
        "parent_id": None,
    }
    exact_namespace: str | None = None
    for name, value in params.multi_items():
        if not name.startswith("filters["):
            continue
        match = _FILTER.match(name)
        if match is None:
            raise QueryError([Problem(name, "use filters[field][OPERATION]=value")])
        field, op, sub = match.groups()
        if field == "namespace" and op in (*_PREFIX_OPS, "IN"):
            if "," in value:
                raise QueryError([Problem(name, "Lanner filters on one namespace per query")])
            fields["namespace"] = value
            exact_namespace = value if op in ("EQUALS", "IN") else None
        elif field == "flowId" and op == "EQUALS":
            fields["flow_id"] = value
        elif field == "q" and op in ("EQUALS", "CONTAINS"):
            fields["q"] = value
        elif field == "state" and op in ("EQUALS", "IN"):
            try:
                fields["states"] += [State(s.strip()) for s in value.split(",") if s.strip()]
            except ValueError:
                raise QueryError([Problem(name, f"'{value}' is not a state")]) from None
        elif field == "labels" and op == "EQUALS":
            if sub:
                fields["labels"][sub] = value
            else:
                fields["labels"].update(parse_labels([value], name))
        elif field == "startDate" and op in ("GREATER_THAN", "GREATER_THAN_OR_EQUAL_TO"):
            fields["start_date"] = _date(value, name)
        elif field in ("endDate", "startDate") and op in ("LESS_THAN", "LESS_THAN_OR_EQUAL_TO"):
            fields["end_date"] = _date(value, name)
        elif field == "parentId" and op == "EQUALS":
            fields["parent_id"] = value
        else:
            raise QueryError([Problem(name, f"filter {field} {op} is not supported by Lanner")])
    query = ExecutionQuery(
        tenant_id=tenant,
        namespace=fields["namespace"],
        flow_id=fields["flow_id"],
        q=fields["q"],
        states=tuple(fields["states"]),
        labels=fields["labels"],
        start_date=fields["start_date"],
        end_date=fields["end_date"],
        parent_id=fields["parent_id"],
        size=MAX_PAGE_SIZE,
    )
    return query, exact_namespace


def matching(backends: Backends, query: ExecutionQuery, namespace: str | None) -> list[Execution]:
    first = backends.repositories.executions.search(query)
    if first.total > MAX_RESULT_WINDOW:
        raise QueryError(
            [
                Problem(
                    "filters",
                    f"{first.total} executions match: narrow the query (at most "
                    f"{MAX_RESULT_WINDOW} per call)",
                )
            ]
        )
    found = list(first.results)
    cursor = first.next
    while cursor is not None:
        page = backends.repositories.executions.search(dataclasses.replace(query, after=cursor))
        found += page.results
        cursor = page.next
    return [e for e in found if namespace is None or e.namespace == namespace]


# ---------------------------------------------------------------- applying an order to many


def _bulk(
    backends: Backends,
    tenant: str,
    executions: list[Execution | str],
    rule: Rule,
    what: str,
) -> Response:
    decisions: list[_orders.Decision] = []
    invalids: list[dict[str, Any]] = []
    for item in executions:
        if isinstance(item, str):
            invalids.append({"invalidValue": item, "message": "execution not found"})
            continue
        try:
            decisions.append(rule(item))
        except _orders.Refused as exc:
            invalids.append({"invalidValue": item.id, "message": exc.message})
    if invalids:
        refusal = {"message": f"invalid bulk {what}", "invalids": invalids}
        return JSONResponse(refusal, status_code=400)
    for decision in decisions:
        apply(backends, decision)
    count = len(decisions)
    body = {"operationId": new_id(), "totalItems": count, "count": count}
    return JSONResponse(body, status_code=202)


def _by_ids(backends: Backends, tenant: str, ids: list[str]) -> list[Execution | str]:
    out: list[Execution | str] = []
    for execution_id in dict.fromkeys(ids):
        stored = backends.repositories.executions.get(tenant, execution_id)
        out.append(stored if stored is not None else execution_id)
    return out


def _rule(action: str, backends: Backends, tenant: str, request: Request) -> Rule:
    now = datetime.now(UTC)
    params = request.query_params
    if action == "kill":
        return lambda ex: _orders.kill(ex, new_id(), now)
    if action == "restart":
        return lambda ex: _orders.restart(ex, new_id(), now)
    if action == "resume":
        return lambda ex: _orders.resume(ex, new_id(), now)
    if action == "pause":
        return lambda ex: _orders.pause(ex, new_id(), now)
    if action == "force-run":
        return lambda ex: _orders.force_run(ex, new_id(), now)
    if action == "unqueue":
        try:
            state = State(params.get("state", "RUNNING"))
        except ValueError:
            raise QueryError([Problem("state", "not a state")]) from None
        return lambda ex: _orders.unqueue(ex, new_id(), now, state)
    if action == "replay":
        latest = params.get("latestRevision", "").lower() == "true"

        def replay(ex: Execution) -> _orders.Decision:
            flow = flow_of_execution(backends, tenant, ex)
            if latest:
                flow = flow_of_execution(backends, tenant, ex, _latest(backends, tenant, ex))
            return _orders.replay(ex, flow, None, new_id(), now)

        return replay
    raise AssertionError(action)


def _latest(backends: Backends, tenant: str, execution: Execution) -> int | None:
    record = backends.repositories.flows.get(tenant, execution.namespace, execution.flow_id)
    return record.revision if record is not None else None


def _register(action: str, method: str) -> None:
    async def by_ids(
        request: Request,
        backends: BackendsDep,
        tenant: TenantDep,
        ids: Annotated[list[str], Body(description="execution ids")],
    ) -> Response:
        def run() -> Response:
            rule = _rule(action, backends, tenant, request)
            return _bulk(backends, tenant, _by_ids(backends, tenant, ids), rule, action)

        return await anyio.to_thread.run_sync(run)

    async def by_query(request: Request, backends: BackendsDep, tenant: TenantDep) -> Response:
        def run() -> Response:
            query, namespace = query_of(request, tenant)
            rule = _rule(action, backends, tenant, request)
            found: list[Execution | str] = list(matching(backends, query, namespace))
            return _bulk(backends, tenant, found, rule, action)

        return await anyio.to_thread.run_sync(run)

    verb = action.replace("-", " ")
    router.add_api_route(
        f"/executions/{action}/by-ids",
        by_ids,
        methods=[method],
        status_code=202,
        operation_id=f"{action.replace('-', '_')}_by_ids",
        summary=f"{verb.capitalize()} executions by id",
    )
    router.add_api_route(
        f"/executions/{action}/by-query",
        by_query,
        methods=[method],
        status_code=202,
        operation_id=f"{action.replace('-', '_')}_by_query",
        summary=f"{verb.capitalize()} the executions a query finds",
    )


for _action, _method in (
    ("kill", "DELETE"),
    ("restart", "POST"),
    ("replay", "POST"),
    ("resume", "POST"),
    ("pause", "POST"),
    ("unqueue", "POST"),
    ("force-run", "POST"),
):
    _register(_action, _method)


class SetLabelsByIds(BaseModel):
    """Kestra's ``SetLabelsByIdsRequest``."""

    model_config = ConfigDict(populate_by_name=True)
    executions_id: list[str] = Field(alias="executionsId")
    execution_labels: list[Label] = Field(alias="executionLabels")


@router.post("/executions/labels/by-ids", status_code=202, summary="Set labels on executions")
async def labels_by_ids(body: SetLabelsByIds, backends: BackendsDep, tenant: TenantDep) -> Any:
    def run() -> Response:
        found = _by_ids(backends, tenant, body.executions_id)
        rule: Rule = lambda ex: _orders.set_labels(ex, body.execution_labels, new_id())  # noqa: E731
        return _bulk(backends, tenant, found, rule, "labels")

    return await anyio.to_thread.run_sync(run)


@router.post(
    "/executions/labels/by-query", status_code=202, summary="Set labels on the executions found"
)
async def labels_by_query(
    request: Request,
    backends: BackendsDep,
    tenant: TenantDep,
    labels: Annotated[list[Label], Body()],
) -> Any:
    def run() -> Response:
        query, namespace = query_of(request, tenant)
        found: list[Execution | str] = list(matching(backends, query, namespace))
        rule: Rule = lambda ex: _orders.set_labels(ex, labels, new_id())  # noqa: E731
        return _bulk(backends, tenant, found, rule, "labels")

    return await anyio.to_thread.run_sync(run)


# ---------------------------------------------------------------- delete


def _delete_many(
    backends: Backends,
    tenant: str,
    executions: list[Execution | str],
    include_non_terminated: bool,
    delete_storage: bool,
) -> Response:
    invalids = []
    for item in executions:
        if isinstance(item, str):
            invalids.append({"invalidValue": item, "message": "execution not found"})
        elif not include_non_terminated and not item.state.current.terminal:
            invalids.append({"invalidValue": item.id, "message": "execution not terminated"})
    if invalids:
        body = {"message": "invalid bulk delete", "invalids": invalids}
        return JSONResponse(body, status_code=422)
    count = 0
    for item in executions:
        assert not isinstance(item, str)
        backends.repositories.executions.delete(tenant, item.id)
        if delete_storage:
            for folder in execution_folders(tenant, item.namespace, item.flow_id, item.id):
                backends.storage.delete_prefix(folder)
        count += 1
    return JSONResponse({"count": count})


IncludeNonTerminated = Annotated[bool, Query(alias="includeNonTerminated")]
DeleteStorage = Annotated[bool, Query(alias="deleteStorage")]


@router.delete("/executions/by-ids", summary="Delete executions by id")
async def delete_by_ids(
    backends: BackendsDep,
    tenant: TenantDep,
    ids: Annotated[list[str], Body()],
    include_non_terminated: IncludeNonTerminated = False,
    delete_storage: DeleteStorage = True,
) -> Any:
    def run() -> Response:
        found = _by_ids(backends, tenant, ids)
        return _delete_many(backends, tenant, found, include_non_terminated, delete_storage)

    return await anyio.to_thread.run_sync(run)


@router.delete("/executions/by-query", summary="Delete the executions a query finds")
async def delete_by_query(
    request: Request,
    backends: BackendsDep,
    tenant: TenantDep,
    include_non_terminated: IncludeNonTerminated = False,
    delete_storage: DeleteStorage = True,
) -> Any:
    def run() -> Response:
        query, namespace = query_of(request, tenant)
        found: list[Execution | str] = list(matching(backends, query, namespace))
        return _delete_many(backends, tenant, found, include_non_terminated, delete_storage)

    return await anyio.to_thread.run_sync(run)
