"""Triggers: every trigger of the deployed flows with its state (Kestra's ``/triggers/search``).

A result is Kestra's pair: ``abstractTrigger`` (the trigger as the flow declares it) and
``triggerContext`` (what the scheduler stored: next date, last execution, backfill, disabled),
the context being only the trigger's identity until the scheduler has evaluated it (webhook and
flow triggers never are). States come from the repository (the indexer copies the ``triggers``
topic), flows from the flow repository.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query

from common.backends import Backends
from common.errors import FlowValidationError, Problem, QueryError
from common.flow.parser import parse_flow
from common.models.trigger import TriggerState, trigger_uid
from common.repository.base import MAX_PAGE_SIZE
from webserver.deps import BackendsDep, TenantDep

router = APIRouter(tags=["triggers"])

_SORTS = ("namespace", "flowId", "triggerId", "nextExecutionDate")


def _sort_key(field: str) -> Any:
    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        context = item["triggerContext"]
        identity = (context["namespace"], context["flowId"], context["triggerId"])
        if field == "nextExecutionDate":
            # triggers without a next date (not scheduled, not evaluated yet) come last
            next_date = context.get("nextExecutionDate")
            return (next_date is None, next_date or "", *identity)
        if field == "flowId":
            return (context["flowId"], *identity)
        if field == "triggerId":
            return (context["triggerId"], *identity)
        return identity

    return key


def list_triggers(
    backends: Backends,
    tenant: str,
    namespace: str | None,
    flow_id: str | None,
    q: str | None,
) -> list[dict[str, Any]]:
    states = {
        s.uid: s for s in backends.repositories.triggers.find(tenant, namespace or None, flow_id)
    }
    needle = (q or "").lower()
    out: list[dict[str, Any]] = []
    for record in backends.repositories.flows.find(tenant, namespace or None):
        if flow_id and record.id != flow_id:
            continue
        try:
            flow = parse_flow(record.source)
        except FlowValidationError:
            continue  # stored before a plugin went away: it cannot trigger anything
        for trigger in flow.triggers:
            uid = trigger_uid(tenant, record.namespace, record.id, trigger.id)
            if needle and needle not in f"{record.namespace} {record.id} {trigger.id}".lower():
                continue
            state = states.get(uid) or TriggerState(
                tenant_id=tenant,
                namespace=record.namespace,
                flow_id=record.id,
                trigger_id=trigger.id,
            )
            context = state.to_dict()
            for internal in ("fingerprint", "appliedRequests"):  # the scheduler's bookkeeping
                context.pop(internal, None)
            context["disabled"] = state.disabled
            declared = trigger.model_dump(mode="json", by_alias=True, exclude_none=True)
            out.append(
                {
                    "abstractTrigger": declared,
                    "triggerContext": context,
                    # Kestra's UI greys a trigger out when either the flow or it is disabled
                    "flowDisabled": record.disabled or flow.disabled,
                    "triggerDisabled": bool(declared.get("disabled", False)),
                }
            )
    return out


@router.get("/triggers/search", summary="Search triggers with their state")
async def search_triggers(
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    q: Annotated[str | None, Query(description="text in namespace, flow id or trigger id")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 25,
    sort: Annotated[
        str | None,
        Query(description="namespace, flowId, triggerId or nextExecutionDate, then :asc|:desc"),
    ] = None,
) -> dict[str, Any]:
    field, _, direction = (sort or "namespace:asc").partition(":")
    if field not in _SORTS or direction not in ("", "asc", "desc"):
        raise QueryError([Problem("sort", f"sort by one of {', '.join(_SORTS)}, :asc or :desc")])
    found = await anyio.to_thread.run_sync(
        lambda: list_triggers(backends, tenant, namespace, flow_id, q)
    )
    found.sort(key=_sort_key(field), reverse=direction == "desc")
    start = (page - 1) * size
    return {"results": found[start : start + size], "total": len(found)}
