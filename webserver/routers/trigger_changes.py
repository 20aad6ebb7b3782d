"""Changing triggers: enable, disable, unlock, backfill create / pause / unpause / delete, on
Kestra's paths (``PUT /triggers``, ``/triggers/set-disabled/...``, ``/triggers/.../unlock``,
``/triggers/backfill/...``) and bodies (Kestra's ``Trigger``: ``namespace``, ``flowId``,
``triggerId``, plus ``disabled`` or ``backfill``; other fields are ignored).

The scheduler is the only writer of trigger states. Each change is checked here (the flow and
trigger exist, the dates make sense: every refusal is a 4xx naming the field) and then sent as a
request on the ``triggers`` topic (``common.trigger_requests``); the scheduler that evaluates the
trigger applies it at its next tick, within about a second. The answer is the trigger's state as
it will be (``triggerContext`` of ``/triggers/search``): the fields the user changed, the
scheduler's own fields as last indexed. A Flow trigger is evaluated by the executor, which
reads the ``disabled`` of the states on ``triggers`` (``common.trigger_states``): it can be
enabled and disabled here too, not unlocked or backfilled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from common.backends import Backends
from common.errors import ConflictError, InputValidationError, NotFoundError, Problem
from common.flow.parser import parse_flow
from common.models.trigger import BackfillRequest, TriggerRequest, TriggerState, trigger_uid
from common.plugins.base import Trigger
from common.plugins.core.triggers import FlowTrigger, Schedule
from common.trigger_requests import expected_state, new_request, send_request
from webserver.deps import BackendsDep, TenantDep
from webserver.routers.flows import load_flow
from webserver.routers.triggers import list_triggers

router = APIRouter(tags=["triggers"])


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class BackfillBody(_Body):
    """Kestra's ``Backfill``: dates without an offset are in the trigger's timezone."""

    start: datetime
    end: datetime | None = None
    inputs: dict[str, Any] | None = None
    labels: dict[str, str] | list[dict[str, Any]] | None = None
    paused: bool = False


class TriggerBody(_Body):
    """Kestra's ``Trigger`` as its UI and clients send it (only these fields are read)."""

    namespace: str = Field(min_length=1)
    flow_id: str = Field(alias="flowId", min_length=1)
    trigger_id: str = Field(alias="triggerId", min_length=1)
    disabled: bool | None = None
    backfill: BackfillBody | None = None


class SetDisabledBody(_Body):
    triggers: list[TriggerBody] = Field(min_length=1)
    disabled: bool


# ---------------------------------------------------------------- helpers


def _declared(
    backends: Backends, tenant: str, namespace: str, flow_id: str, trigger_id: str
) -> Trigger:
    record = load_flow(backends, tenant, namespace, flow_id)
    flow = parse_flow(record.source)
    for trigger in flow.triggers:
        if trigger.id == trigger_id:
            return trigger
    raise NotFoundError(f"flow {namespace}.{flow_id} has no trigger '{trigger_id}'")


def _stored(
    backends: Backends, tenant: str, namespace: str, flow_id: str, trigger_id: str
) -> TriggerState | None:
    uid = trigger_uid(tenant, namespace, flow_id, trigger_id)
    for state in backends.repositories.triggers.find(tenant, namespace, flow_id):
        if state.uid == uid:
            return state
    return None


def context_json(state: TriggerState) -> dict[str, Any]:
    out = state.to_dict()
    for internal in ("fingerprint", "appliedRequests", "schemaVersion"):
        out.pop(internal, None)
    out["disabled"] = state.disabled
    return out


def _labels(raw: dict[str, str] | list[dict[str, Any]] | None) -> dict[str, str] | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    problems = [
        Problem(f"backfill.labels[{i}]", "a label is {key: ..., value: ...}")
        for i, item in enumerate(raw)
        if "key" not in item
    ]
    if problems:
        raise InputValidationError(problems)
    return {str(item["key"]): str(item.get("value", "")) for item in raw}


def _backfill(body: BackfillBody, trigger: Trigger, now: datetime) -> BackfillRequest:
    if not isinstance(trigger, Schedule):
        raise InputValidationError(
            [
                Problem(
                    "backfill",
                    f"only Schedule triggers have backfills; '{trigger.id}' is a {trigger.type}",
                )
            ]
        )
    zone = ZoneInfo(trigger.timezone)

    def aware(value: datetime) -> datetime:
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)

    start = aware(body.start)
    end = aware(body.end) if body.end is not None else None
    problems = []
    if end is not None and end < start:
        problems.append(
            Problem(
                "backfill.end", f"ends ({end.isoformat()}) before it starts ({start.isoformat()})"
            )
        )
    if start > now:
        problems.append(
            Problem(
                "backfill.start",
                f"{start.isoformat()} is in the future: a backfill replays past dates",
            )
        )
    if problems:
        raise InputValidationError(problems)
    return BackfillRequest(
        start=start, end=end, inputs=body.inputs, labels=_labels(body.labels), paused=body.paused
    )


def _change(
    backends: Backends,
    tenant: str,
    body: TriggerBody,
    *,
    backfill_action: str | None = None,
    disabled: bool | None = None,
    unlock: bool = False,
) -> dict[str, Any]:
    """Check one change, send it to the scheduler; return the trigger context as it will be."""
    trigger = _declared(backends, tenant, body.namespace, body.flow_id, body.trigger_id)
    if isinstance(trigger, FlowTrigger) and (unlock or backfill_action is not None):
        # enabling/disabling is all a Flow trigger has: the executor reads its state
        raise InputValidationError(
            [
                Problem(
                    "triggerId",
                    f"'{trigger.id}' is a Flow trigger, evaluated by the executor when other "
                    "executions end: it can be enabled or disabled, not unlocked or backfilled",
                )
            ]
        )
    now = datetime.now(UTC)
    state = _stored(backends, tenant, body.namespace, body.flow_id, body.trigger_id)
    changes: dict[str, Any] = {"disabled": disabled, "unlock": unlock}
    if backfill_action == "CREATE":
        assert body.backfill is not None
        changes["backfill"] = _backfill(body.backfill, trigger, now)
    elif backfill_action is not None:
        if state is None or state.backfill is None:
            raise ConflictError(
                f"No backfill found: trigger '{body.trigger_id}' of {body.namespace}."
                f"{body.flow_id} has no backfill to {backfill_action.lower()}"
            )
    if unlock and (state is None or state.evaluate_running_date is None):
        raise ConflictError(
            f"Trigger is not locked: '{body.trigger_id}' of {body.namespace}.{body.flow_id}"
        )
    request: TriggerRequest = new_request(
        tenant,
        body.namespace,
        body.flow_id,
        body.trigger_id,
        now,
        backfill_action=backfill_action,
        **changes,
    )
    send_request(backends.queue, request)
    return context_json(expected_state(state, request))


async def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


# ---------------------------------------------------------------- routes


@router.get("/triggers/{namespace}/{flow_id}", summary="The trigger states of a flow")
async def flow_triggers(
    namespace: str, flow_id: str, backends: BackendsDep, tenant: TenantDep
) -> dict[str, Any]:
    def find() -> list[dict[str, Any]]:
        load_flow(backends, tenant, namespace, flow_id)
        found = list_triggers(backends, tenant, namespace, flow_id, None)
        return [
            item["triggerContext"]
            for item in found
            if item["triggerContext"]["namespace"] == namespace
        ]

    results = await _run(find)
    return {"results": results, "total": len(results)}


@router.put("/triggers", summary="Update a trigger: enable or disable it, or create a backfill")
async def update_trigger(
    body: TriggerBody, backends: BackendsDep, tenant: TenantDep
) -> dict[str, Any]:
    if body.backfill is not None:
        return await _run(_change, backends, tenant, body, backfill_action="CREATE")
    if body.disabled is None:
        raise InputValidationError(
            [Problem("disabled", "give `disabled` (true or false) or a `backfill`")]
        )
    return await _run(_change, backends, tenant, body, disabled=body.disabled)


@router.post("/triggers/set-disabled/by-triggers", summary="Disable or enable given triggers")
async def set_disabled_by_triggers(
    body: SetDisabledBody, backends: BackendsDep, tenant: TenantDep
) -> dict[str, Any]:
    def apply() -> int:
        for trigger in body.triggers:  # all checked first: a bad one changes none
            _declared(backends, tenant, trigger.namespace, trigger.flow_id, trigger.trigger_id)
        for trigger in body.triggers:
            _change(backends, tenant, trigger, disabled=body.disabled)
        return len(body.triggers)

    return {"count": await _run(apply)}


def _change_each(
    backends: Backends, tenant: str, triggers: list[TriggerBody], change: dict[str, Any]
) -> int:
    """Applies ``change`` to each trigger it applies to (a ConflictError skips one); the count."""
    count = 0
    for trigger in triggers:
        try:
            _change(backends, tenant, trigger, **change)
        except ConflictError:
            continue
        count += 1
    return count


def _found(
    backends: Backends,
    tenant: str,
    namespace: str | None,
    flow_id: str | None,
    q: str | None,
    keep: Callable[[dict[str, Any]], bool],
) -> list[TriggerBody]:
    """The triggers a by-query action changes: those of the search that ``keep`` accepts."""
    return [
        TriggerBody(
            namespace=item["triggerContext"]["namespace"],
            flowId=item["triggerContext"]["flowId"],
            triggerId=item["triggerContext"]["triggerId"],
        )
        for item in list_triggers(backends, tenant, namespace, flow_id, q)
        if keep(item)
    ]


@router.post("/triggers/set-disabled/by-query", summary="Disable or enable the triggers found")
async def set_disabled_by_query(
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    q: str | None = None,
    disabled: bool = True,
) -> dict[str, Any]:
    def apply() -> int:
        found = _found(backends, tenant, namespace, flow_id, q, lambda item: True)
        for body in found:
            _change(backends, tenant, body, disabled=disabled)
        return len(found)

    return {"count": await _run(apply)}


@router.post(
    "/triggers/{namespace}/{flow_id}/{trigger_id}/unlock",
    summary="Unlock a trigger: clear its evaluation lock",
)
async def unlock_trigger(
    namespace: str, flow_id: str, trigger_id: str, backends: BackendsDep, tenant: TenantDep
) -> dict[str, Any]:
    body = TriggerBody(namespace=namespace, flowId=flow_id, triggerId=trigger_id)
    return await _run(_change, backends, tenant, body, unlock=True)


@router.post("/triggers/unlock/by-triggers", summary="Unlock given triggers")
async def unlock_by_triggers(
    body: list[TriggerBody], backends: BackendsDep, tenant: TenantDep
) -> dict[str, Any]:
    # as Kestra: a trigger that is not locked is skipped
    return {"count": await _run(_change_each, backends, tenant, body, {"unlock": True})}


@router.post("/triggers/unlock/by-query", summary="Unlock the locked triggers found")
async def unlock_by_query(
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    q: str | None = None,
) -> dict[str, Any]:
    def apply() -> int:
        locked = _found(
            backends,
            tenant,
            namespace,
            flow_id,
            q,
            lambda item: bool(item["triggerContext"].get("evaluateRunningDate")),
        )
        for body in locked:
            _change(backends, tenant, body, unlock=True)
        return len(locked)

    return {"count": await _run(apply)}


@router.put("/triggers/backfill/pause", summary="Pause a backfill")
async def pause_backfill(
    body: TriggerBody, backends: BackendsDep, tenant: TenantDep
) -> dict[str, Any]:
    return await _run(_change, backends, tenant, body, backfill_action="PAUSE")


@router.put("/triggers/backfill/unpause", summary="Unpause a backfill")
async def unpause_backfill(
    body: TriggerBody, backends: BackendsDep, tenant: TenantDep
) -> dict[str, Any]:
    return await _run(_change, backends, tenant, body, backfill_action="UNPAUSE")


@router.post("/triggers/backfill/delete", summary="Delete a backfill")
async def delete_backfill(
    body: TriggerBody, backends: BackendsDep, tenant: TenantDep
) -> dict[str, Any]:
    return await _run(_change, backends, tenant, body, backfill_action="DELETE")


def _bulk(action: str) -> Any:
    async def handler(
        body: list[TriggerBody], backends: BackendsDep, tenant: TenantDep
    ) -> dict[str, Any]:
        # as Kestra: a trigger without a backfill is skipped
        change = {"backfill_action": action}
        return {"count": await _run(_change_each, backends, tenant, body, change)}

    return handler


for _action, _method, _path in (
    ("PAUSE", "POST", "/triggers/backfill/pause/by-triggers"),
    ("UNPAUSE", "POST", "/triggers/backfill/unpause/by-triggers"),
    ("DELETE", "POST", "/triggers/backfill/delete/by-triggers"),
):
    router.add_api_route(
        _path,
        _bulk(_action),
        methods=[_method],
        operation_id=f"backfill_{_action.lower()}_by_triggers",
        summary=f"{_action.capitalize()} the backfills of given triggers",
    )
