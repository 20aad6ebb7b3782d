"""Kestra 2.0's orders on one execution: ``/executions/{executionId}/actions/...`` (kill,
restart, replay, resume, pause, unqueue, force-run, labels) and the execution's graph.

The rules and answers are Kestra's (``webserver/_orders.py``; the older ``/executions/{id}/
restart`` and ``/replay`` in ``executions.py`` use the same rules, the older kill and resume
answer as they did). Like those, an
order goes to the ``executor`` topic keyed by execution id and the answer is the execution as
the order makes it first. On Kafka while the repository does not answer, kill and resume are
sent unchecked (202, as the older paths); the others need the stored state (503).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, HTTPException, Query, Request, Response

from common.backends import Backends
from common.errors import NotFoundError
from common.flow.parser import parse_flow
from common.ids import new_id
from common.models.execution import Execution, Label
from common.models.flow import Flow
from common.models.messages import Kill
from common.models.state import State
from common.queue.base import EXECUTOR
from webserver import _orders
from webserver.deps import BackendsDep, TenantDep
from webserver.routers.executions import (
    _get_execution,
    _stored_or_unknown,
    _submit,
    _unchecked,
    execution_json,
    resume_execution,
    store_best_effort,
)
from webserver.routers.flows import flow_json, load_flow
from webserver.routers.graph import flow_graph

router = APIRouter(tags=["executions"])

ACTIONS = "/executions/{execution_id}/actions"


def refused(exc: _orders.Refused) -> HTTPException:
    return HTTPException(exc.status, detail=exc.message)


def flow_of_execution(
    backends: Backends, tenant: str, execution: Execution, revision: int | None = None
) -> Flow:
    """The flow revision an execution ran, the latest when it is gone; or ``revision`` (404
    when the flow has no such revision, as Kestra's "Unable to find revision")."""
    wanted = revision or execution.flow_revision
    record = backends.repositories.flows.get(tenant, execution.namespace, execution.flow_id, wanted)
    if record is None and revision is not None:
        raise NotFoundError(
            f"Unable to find revision {revision} on flow {execution.namespace}.{execution.flow_id}"
        )
    record = record or load_flow(backends, tenant, execution.namespace, execution.flow_id)
    return parse_flow(record.source).model_copy(
        update={"revision": record.revision, "tenant_id": tenant}
    )


def kestra_json(execution: Execution) -> dict[str, Any]:
    """The execution's JSON with the fields Kestra's ``Execution`` requires (``originalId``:
    the execution itself when it replays none)."""
    body = execution_json(execution)
    body.setdefault("originalId", execution.original_id or execution.id)
    return body


def apply(backends: Backends, decision: _orders.Decision) -> dict[str, Any]:
    """Send what a decision asks for (writes go through the queue); the answer's JSON."""
    if decision.new:
        _submit(backends, decision.answer)
    for order in decision.orders:
        backends.queue.emit(EXECUTOR, order.execution_id, order.to_json())
    if decision.store:
        store_best_effort(backends, decision.answer)
    return kestra_json(decision.answer)


def decide(
    backends: Backends, tenant: str, execution_id: str, rule: Callable[[Execution], Any]
) -> dict[str, Any]:
    execution = _get_execution(backends, tenant, execution_id)
    try:
        decision = rule(execution)
    except _orders.Refused as exc:
        raise refused(exc) from None
    return apply(backends, decision)


async def ordered(
    backends: Backends,
    tenant: str,
    execution_id: str,
    rule: Callable[[Execution, str, datetime], _orders.Decision],
) -> dict[str, Any]:
    """``decide`` in a thread for a rule of ``_orders`` that takes the stored execution, a new
    order id and now."""
    return await anyio.to_thread.run_sync(
        decide, backends, tenant, execution_id, lambda ex: rule(ex, new_id(), datetime.now(UTC))
    )


@router.delete(ACTIONS + "/kill", summary="Kill an execution (Kestra 2.0 path)")
async def kill(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    is_on_kill_cascade: Annotated[bool, Query(alias="isOnKillCascade")] = True,
) -> Any:
    """200 with the execution, KILLING; 409 when it already ended; 404 when unknown. Subflow
    executions are always killed with their parent (``isOnKillCascade`` is accepted)."""

    def run() -> Any:
        stored = _stored_or_unknown(backends, tenant, execution_id)
        if stored is None:
            order = Kill(id=new_id(), execution_id=execution_id, tenant_id=tenant)
            backends.queue.emit(EXECUTOR, execution_id, order.to_json())
            return _unchecked(execution_id, "kill")
        try:
            decision = _orders.kill(stored, new_id(), datetime.now(UTC))
        except _orders.Refused as exc:
            raise refused(exc) from None
        return apply(backends, decision)

    return await anyio.to_thread.run_sync(run)


@router.post(ACTIONS + "/restart", summary="Restart an execution (Kestra's rules)")
async def restart(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    revision: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    """The same execution, RESTARTED, its failed task runs RESTARTED. 409 unless it ended (or is
    PAUSED); 422 "No task found to restart execution from!" when no task run failed."""
    return await anyio.to_thread.run_sync(
        decide,
        backends,
        tenant,
        execution_id,
        lambda ex: _orders.restart(ex, new_id(), datetime.now(UTC), revision),
    )


@router.post(ACTIONS + "/replay", summary="Replay an execution from a task run")
async def replay(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    task_run_id: Annotated[str | None, Query(alias="taskRunId")] = None,
    revision: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    """A new execution: CREATED (whole flow) or RESTARTED from ``taskRunId`` (the task runs
    before it kept). 409 unless the execution ended; 422 for a task run it does not hold."""

    def run() -> dict[str, Any]:
        execution = _get_execution(backends, tenant, execution_id)
        flow = flow_of_execution(backends, tenant, execution, revision)
        try:
            decision = _orders.replay(execution, flow, task_run_id, new_id(), datetime.now(UTC))
        except _orders.Refused as exc:
            raise refused(exc) from None
        return apply(backends, decision)

    return await anyio.to_thread.run_sync(run)


@router.post(ACTIONS + "/resume", summary="Resume a paused execution (inputs as form fields)")
async def resume(
    execution_id: str, request: Request, backends: BackendsDep, tenant: TenantDep
) -> Any:
    """409 unless PAUSED. The answer: the execution with its paused task run RUNNING."""
    stored = await anyio.to_thread.run_sync(_stored_or_unknown, backends, tenant, execution_id)
    if stored is not None and stored.state.current != State.PAUSED:
        raise refused(_orders.Refused(409, f"Execution '{execution_id}' is not paused"))
    answer = await resume_execution(execution_id, request, backends, tenant)
    if stored is None or isinstance(answer, Response):
        return answer
    return kestra_json(_orders.resume(stored, "", datetime.now(UTC)).answer)


@router.post(ACTIONS + "/pause", summary="Pause a running execution")
async def pause(execution_id: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    """PAUSED: the task runs already running finish, no new one starts until ``resume``.
    409 unless RUNNING."""
    return await ordered(backends, tenant, execution_id, _orders.pause)


@router.post(ACTIONS + "/unqueue", summary="Unqueue a QUEUED execution")
async def unqueue(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    state: Annotated[State, Query(description="RUNNING (start it now) or KILLED")] = State.RUNNING,
) -> Any:
    return await ordered(
        backends, tenant, execution_id, lambda ex, id_, now: _orders.unqueue(ex, id_, now, state)
    )


@router.post(ACTIONS + "/force-run", summary="Force an execution to run now")
async def force_run(execution_id: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    """CREATED or QUEUED: starts now (past the concurrency limit); PAUSED: resumes."""
    return await ordered(backends, tenant, execution_id, _orders.force_run)


@router.post(ACTIONS + "/labels", summary="Add or update labels of an ended execution")
async def set_labels(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    labels: Annotated[list[Label], Body()],
) -> Any:
    """Given labels win over existing ones; 400 unless the execution ended."""
    return await anyio.to_thread.run_sync(
        decide, backends, tenant, execution_id, lambda ex: _orders.set_labels(ex, labels, new_id())
    )


@router.get("/executions/{execution_id}/graph", summary="The graph of an execution's flow")
async def execution_graph(execution_id: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    """Kestra's ``FlowGraph`` of the flow revision the execution ran."""

    def build() -> dict[str, Any]:
        execution = _get_execution(backends, tenant, execution_id)
        return flow_graph(flow_of_execution(backends, tenant, execution))

    return await anyio.to_thread.run_sync(build)


def _flow_record(
    backends: Backends, tenant: str, namespace: str, flow_id: str, revision: int | None
) -> Any:
    record = backends.repositories.flows.get(tenant, namespace, flow_id, revision)
    if record is None:
        what = f" revision {revision}" if revision else ""
        raise NotFoundError(f"flow {namespace}.{flow_id}{what} not found")
    return record


@router.get("/executions/{execution_id}/flow", summary="The flow revision an execution ran")
async def flow_of(execution_id: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    def read() -> dict[str, Any]:
        execution = _get_execution(backends, tenant, execution_id)
        record = _flow_record(
            backends, tenant, execution.namespace, execution.flow_id, execution.flow_revision
        )
        return flow_json(record)

    return await anyio.to_thread.run_sync(read)


@router.get("/executions/flows/{namespace}/{flow_id}", summary="A flow, to execute it")
async def flow_to_execute(
    namespace: str,
    flow_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    revision: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    def read() -> dict[str, Any]:
        return flow_json(_flow_record(backends, tenant, namespace, flow_id, revision))

    return await anyio.to_thread.run_sync(read)
