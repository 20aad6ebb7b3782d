"""Executions: create (inputs, files, labels, wait), search, get, kill, restart, replay,
resume, delete, follow (SSE), file download and webhooks — with Kestra's paths.

Reads go to the repository; orders go to the ``executor`` topic keyed by execution id. A new
execution is also stored in the repository at once so that a GET right after it works.

On Kafka (``Backends.flows`` set) the repository is a copy the indexer fills, and Elasticsearch
may be down while executions keep running, so no write waits for it:

* create resolves its flow from the ``flows`` topic (never the repository), hands the execution
  to the executor first, then stores the CREATED snapshot as a convenience, skipped for a while
  after a failure (``webserver._breaker``); the indexer stores it anyway from ``executions``;
* kill, resume and restart check the stored state when the repository answers (409 for a
  wrong order, 404 for an unknown execution, as embedded). When it does not, the order is sent
  unchecked (202, saying so): the executor owns the state and ignores an order that does not
  apply (a kill of an ended execution, a resume of one not paused, a restart of one neither
  FAILED nor KILLED, any order for an unknown execution), so a wrong order changes nothing;
* follow streams the snapshots of the ``executions`` topic without the stored one first.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
import posixpath
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from common.backends import Backends
from common.errors import (
    ConflictError,
    FlowValidationError,
    InputValidationError,
    LannerError,
    NotFoundError,
    Problem,
    RepositoryError,
    TooLargeError,
)
from common.executions import new_execution
from common.flow.inputs import validate_inputs
from common.flow.parser import parse_flow
from common.ids import new_id
from common.models.execution import Execution, ExecutionTrigger
from common.models.flow import Flow
from common.models.messages import Kill, NewExecution, Restart, Resume
from common.models.state import State
from common.models.trigger import trigger_uid
from common.plugins.core.conditions import ConditionContext
from common.plugins.core.triggers import Webhook
from common.queue.base import EXECUTIONS, EXECUTOR
from common.repository.base import MAX_PAGE_SIZE, MAX_RESULT_WINDOW, ExecutionQuery
from common.secrets import encrypt_secret_inputs, has_encrypted, hide_encrypted
from common.settings import Settings
from common.storage.base import execution_folders, execution_uri, scheme_of
from common.templating import render, render_object
from webserver import _orders
from webserver._breaker import Breaker
from webserver._live import FeedClosed
from webserver._sse import KEEPALIVE, POLL_SECONDS, EventStream, sse_event
from webserver.deps import BackendsDep, TenantDep, live_feeds
from webserver.routers.flows import load_flow

router = APIRouter(tags=["executions"])

log = logging.getLogger("lanner.webserver")
WAIT_POLL_SECONDS = 0.2
WAIT_DEADLINE_SECONDS = 3600.0


# ---------------------------------------------------------------- helpers


def parse_labels(values: list[str] | None, field: str = "labels") -> dict[str, str]:
    labels: dict[str, str] = {}
    problems = []
    for value in values or []:
        key, sep, val = value.partition(":")
        if not sep or not key.strip():
            problems.append(Problem(field, f"'{value}' is not a label: use key:value"))
            continue
        labels[key.strip()] = val.strip()
    if problems:
        raise InputValidationError(problems)
    return labels


def _shown(execution: Execution) -> Execution:
    """What an API answer shows: SECRET inputs as ``********`` (Kestra masks them too)."""
    if execution.inputs and has_encrypted(execution.inputs):
        return execution.model_copy(update={"inputs": hide_encrypted(execution.inputs)})
    return execution


def execution_json(execution: Execution) -> dict[str, Any]:
    return _shown(execution).to_dict()


def execution_response(execution: Execution) -> Response:
    """The execution's JSON as pydantic writes it: the same body as ``execution_json``, without
    FastAPI's generic encoding of that dict (a fifth of the CPU of POST /executions)."""
    return Response(_shown(execution).to_json(), media_type="application/json")


@functools.lru_cache(maxsize=256)
def _parsed(source: str) -> Flow:
    # parsing the YAML was a tenth of the CPU of creating an execution; a source is immutable
    return parse_flow(source)


def _flow_of(backends: Backends, tenant: str, namespace: str, flow_id: str) -> Flow:
    """The latest revision of a flow: from the ``flows`` topic on Kafka (the repository may be
    down), from the repository embedded."""
    source = backends.flows
    if source is None:
        record = load_flow(backends, tenant, namespace, flow_id)
    else:
        found = source.get(tenant, namespace, flow_id)
        if found is None:
            source.sync()  # saved a moment ago through another webserver: read to the end
            found = source.get(tenant, namespace, flow_id)
        if found is None or found.deleted:
            raise NotFoundError(f"flow {namespace}.{flow_id} not found")
        record = found
    flow = _parsed(record.source)
    return flow.model_copy(update={"revision": record.revision, "tenant_id": tenant})


def _get_execution(backends: Backends, tenant: str, execution_id: str) -> Execution:
    execution = backends.repositories.executions.get(tenant, execution_id)
    if execution is None:
        raise NotFoundError(f"execution '{execution_id}' not found")
    return execution


def _shared_database(backends: Backends) -> Any:
    """The SQLite database of both the queue and the executions repository (embedded), or None."""
    db = getattr(backends.queue, "db", None)
    return db if getattr(backends.repositories.executions, "db", None) is db else None


def _submit(backends: Backends, execution: Execution) -> None:
    """Store the new execution (visible at once) and hand it to the executor.

    On Kafka the executor gets it first and the store is best effort: the indexer writes the
    snapshots anyway, and a CREATED snapshot never overwrites a newer one (``sequence``)."""
    message = NewExecution(id=new_id(), execution_id=execution.id, execution=execution)
    if backends.flows is None:
        db = _shared_database(backends)
        if db is not None:
            # one SQLite database: both writes or neither (a full disk refused the queue write
            # after the store, and the execution showed CREATED for ever: tests/faults)
            try:
                with db.transaction():
                    backends.repositories.executions.save(execution)
                    backends.queue.emit(EXECUTOR, execution.id, message.to_json())
            except sqlite3.Error as exc:  # the COMMIT itself: the disk full
                raise RepositoryError(f"SQLite repository error: {exc}") from exc
            return
        backends.repositories.executions.save(execution)
        backends.queue.emit(EXECUTOR, execution.id, message.to_json())
        return
    backends.queue.emit(EXECUTOR, execution.id, message.to_json())
    _created_breaker(backends).call(lambda: backends.repositories.executions.save(execution))


def store_best_effort(backends: Backends, execution: Execution) -> None:
    """Store what an order made of an execution (read-your-writes), skipped while the
    repository fails (``Breaker``): the executor's snapshot, indexed later, carries it anyway
    and replaces it (same or higher ``sequence``)."""
    _created_breaker(backends).call(lambda: backends.repositories.executions.save(execution))


_BREAKERS: dict[int, Breaker] = {}


def _created_breaker(backends: Backends) -> Breaker:
    # one per repository object (the process usually has one)
    key = id(backends.repositories)
    breaker = _BREAKERS.get(key)
    if breaker is None:
        breaker = _BREAKERS.setdefault(key, Breaker("storing new executions in the repository"))
    return breaker


def _stored_or_unknown(backends: Backends, tenant: str, execution_id: str) -> Execution | None:
    """The stored execution (404 when unknown), or None on Kafka while the repository does not
    answer: the caller then sends its order unchecked, with the request's tenant (authorized by
    ``webserver.auth.authorize``), and the executor applies it only to an execution of that
    tenant (``executor.core._same_tenant``): another tenant's execution id changes nothing."""
    try:
        return _get_execution(backends, tenant, execution_id)
    except RepositoryError as exc:
        if backends.flows is None:
            raise
        log.warning("state of %s not checked: %s", execution_id, exc)
        return None


def _unchecked(execution_id: str, order: str) -> Response:
    body = {
        "id": execution_id,
        "message": f"{order} requested; the repository is unavailable, so the execution's "
        f"state was not checked: the executor ignores the {order} if it does not apply",
    }
    return Response(json.dumps(body), status_code=202, media_type="application/json")


async def _read_inputs(request: Request) -> tuple[dict[str, Any], dict[str, UploadFile]]:
    """Form fields and files of a multipart/url-encoded body, or a JSON object body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await request.body()
        if not body.strip():
            return {}, {}
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InputValidationError(
                [
                    Problem(
                        "body", f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
                    )
                ]
            ) from None
        if not isinstance(data, dict):
            raise InputValidationError(
                [Problem("body", "the inputs must be a JSON object of input id to value")]
            )
        return data, {}
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        limit = request.app.state.settings.max_upload_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise TooLargeError(
                f"the request body is {int(declared)} bytes, over the limit of {limit} bytes "
                "(setting max_upload_bytes)"
            )
        form = await request.form()
        raw: dict[str, Any] = {}
        files: dict[str, UploadFile] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if (value.size or 0) > limit:  # a chunked body has no length to check first
                    raise TooLargeError(
                        f"file input '{key}' is {value.size} bytes, over the limit of {limit} "
                        "bytes (setting max_upload_bytes)"
                    )
                files[key] = value
            elif key in raw:
                previous = raw[key]
                raw[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                raw[key] = value
        return raw, files
    return {}, {}


def _scheme(backends: Backends) -> str:
    """The scheme of the URIs this server writes (``storage_uri_scheme``)."""
    return scheme_of(backends.settings.storage_uri_scheme)


def _safe_filename(name: str | None) -> str:
    base = posixpath.basename((name or "").replace("\\", "/")).strip()
    return base if base not in ("", ".", "..") else "file"


async def create_execution(
    backends: Backends,
    tenant: str,
    flow: Flow,
    raw: Mapping[str, Any],
    uploads: Mapping[str, UploadFile],
    labels: Mapping[str, str],
    trigger: ExecutionTrigger | None = None,
    schedule_date: datetime | None = None,
) -> Execution:
    if flow.disabled:
        raise InputValidationError(
            [Problem("disabled", f"flow {flow.namespace}.{flow.id} is disabled")]
        )
    execution_id = new_id()
    declared_files = {i.id for i in flow.inputs if i.type == "FILE"}
    uris = {
        input_id: (
            execution_uri(tenant, flow.namespace, flow.id, execution_id, _scheme(backends))
            + f"inputs/{input_id}/{_safe_filename(upload.filename)}"
        )
        for input_id, upload in uploads.items()
        if input_id in declared_files
    }
    inputs = encrypt_secret_inputs(
        validate_inputs(flow, raw, uris),
        {i.id for i in flow.inputs if i.type == "SECRET"},
        backends.settings.secret_box(),
    )
    for input_id, uri in uris.items():
        # the upload's spooled file, streamed: an input file may not fit in memory
        upload = uploads[input_id]
        await anyio.to_thread.run_sync(
            functools.partial(backends.storage.put, uri, upload.file, upload.content_type)
        )
    execution = new_execution(
        flow,
        inputs,
        dict(labels),
        execution_id=execution_id,
        now=datetime.now(UTC),
        trigger=trigger,
        tenant_id=tenant,
        schedule_date=schedule_date,
    )
    await anyio.to_thread.run_sync(_submit, backends, execution)
    return execution


async def wait_terminal(backends: Backends, tenant: str, execution: Execution) -> Execution:
    deadline = time.monotonic() + WAIT_DEADLINE_SECONDS
    current = execution
    while not current.state.current.terminal and time.monotonic() < deadline:
        await asyncio.sleep(WAIT_POLL_SECONDS)
        try:
            found = await anyio.to_thread.run_sync(
                backends.repositories.executions.get, tenant, execution.id
            )
        except RepositoryError:
            if backends.flows is None:
                raise
            continue  # the indexer catches up once the repository is back
        current = found or current
    return current


# ---------------------------------------------------------------- search / read


@router.get("/executions/search", summary="Search executions")
async def search_executions(
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    state: Annotated[list[State] | None, Query()] = None,
    labels: Annotated[list[str] | None, Query()] = None,
    start_date: Annotated[datetime | None, Query(alias="startDate")] = None,
    end_date: Annotated[datetime | None, Query(alias="endDate")] = None,
    q: str | None = None,
    parent_id: Annotated[str | None, Query(alias="parentId")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 25,
    sort: Annotated[
        str | None, Query(description="state.startDate:asc or state.startDate:desc")
    ] = None,
    after: Annotated[
        str | None,
        Query(
            description="the `next` cursor of the previous page: pages past "
            f"{MAX_RESULT_WINDOW} results are reached this way"
        ),
    ] = None,
) -> dict[str, Any]:
    query = ExecutionQuery(
        tenant_id=tenant,
        namespace=namespace,
        flow_id=flow_id,
        states=tuple(state or ()),
        labels=parse_labels(labels),
        start_date=start_date,
        end_date=end_date,
        q=q,
        parent_id=parent_id,
        page=page,
        size=size,
        sort_desc=not (sort or "").endswith(":asc"),
        after=after,
    )
    found = await anyio.to_thread.run_sync(backends.repositories.executions.search, query)
    return {
        "results": [execution_json(e) for e in found.results],
        "total": found.total,
        "next": found.next,
    }


@router.get("/executions/{execution_id}", summary="Get an execution")
async def get_execution(execution_id: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    execution = await anyio.to_thread.run_sync(_get_execution, backends, tenant, execution_id)
    return execution_response(execution)


@router.delete("/executions/{execution_id}", status_code=204, summary="Delete an execution")
async def delete_execution(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    delete_storage: Annotated[
        bool, Query(alias="deleteStorage", description="also delete its files (Kestra's flag)")
    ] = True,
) -> Response:
    def delete() -> None:
        execution = _get_execution(backends, tenant, execution_id)
        backends.repositories.executions.delete(tenant, execution_id)
        if delete_storage:
            for folder in execution_folders(
                tenant, execution.namespace, execution.flow_id, execution_id
            ):
                backends.storage.delete_prefix(folder)

    await anyio.to_thread.run_sync(delete)
    return Response(status_code=204)


# ---------------------------------------------------------------- orders


@router.delete("/executions/{execution_id}/kill", status_code=202, summary="Kill an execution")
async def kill_execution(execution_id: str, backends: BackendsDep, tenant: TenantDep) -> Any:
    def kill() -> Any:
        execution = _stored_or_unknown(backends, tenant, execution_id)
        if execution is not None and execution.state.current.terminal:
            raise ConflictError(
                f"execution '{execution_id}' already ended ({execution.state.current})"
            )
        order = Kill(id=new_id(), execution_id=execution_id, tenant_id=tenant)
        backends.queue.emit(EXECUTOR, execution_id, order.to_json())
        if execution is None:
            return _unchecked(execution_id, "kill")
        return {"id": execution_id, "message": "kill requested"}

    return await anyio.to_thread.run_sync(kill)


@router.post("/executions/{execution_id}/restart", summary="Restart an execution (Kestra's rules)")
async def restart_execution(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    revision: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    """Kestra's ``POST /executions/{id}/restart``, the rules of ``webserver/_orders.restart``
    (the same as ``actions/restart``): 409 unless ended or PAUSED, 422 when no task run is
    FAILED or PAUSED."""

    def restart() -> Any:
        execution = _stored_or_unknown(backends, tenant, execution_id)
        if execution is None:
            order = Restart(id=new_id(), execution_id=execution_id, tenant_id=tenant)
            backends.queue.emit(EXECUTOR, execution_id, order.to_json())
            return _unchecked(execution_id, "restart")
        try:
            decision = _orders.restart(execution, new_id(), datetime.now(UTC), revision)
        except _orders.Refused as exc:
            raise HTTPException(exc.status, detail=exc.message) from None
        for order in decision.orders:
            backends.queue.emit(EXECUTOR, order.execution_id, order.to_json())
        return _kestra_json(decision.answer)

    return await anyio.to_thread.run_sync(restart)


@router.post("/executions/{execution_id}/replay", summary="Replay an execution from a task run")
async def replay_execution(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    task_run_id: Annotated[str | None, Query(alias="taskRunId")] = None,
    revision: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    """Kestra's ``POST /executions/{id}/replay``, the rules of ``webserver/_orders.replay``
    (the same as ``actions/replay``)."""

    def do_replay() -> dict[str, Any]:
        execution = _get_execution(backends, tenant, execution_id)
        wanted = revision or execution.flow_revision
        record = backends.repositories.flows.get(
            tenant, execution.namespace, execution.flow_id, wanted
        ) or load_flow(backends, tenant, execution.namespace, execution.flow_id)
        flow = parse_flow(record.source).model_copy(
            update={"revision": record.revision, "tenant_id": tenant}
        )
        try:
            decision = _orders.replay(execution, flow, task_run_id, new_id(), datetime.now(UTC))
        except _orders.Refused as exc:
            raise HTTPException(exc.status, detail=exc.message) from None
        _submit(backends, decision.answer)
        return _kestra_json(decision.answer)

    return await anyio.to_thread.run_sync(do_replay)


def _kestra_json(execution: Execution) -> dict[str, Any]:
    body = execution_json(execution)
    body.setdefault("originalId", execution.original_id or execution.id)
    return body


@router.post("/executions/{execution_id}/resume", summary="Resume a paused execution")
async def resume_execution(
    execution_id: str, request: Request, backends: BackendsDep, tenant: TenantDep
) -> Any:
    raw, uploads = await _read_inputs(request)
    stored = await anyio.to_thread.run_sync(_stored_or_unknown, backends, tenant, execution_id)
    if stored is None:
        if uploads:  # their location names the execution's flow, which only the state knows
            raise RepositoryError("the repository is unavailable: resume with files later")
        order = Resume(
            id=new_id(), execution_id=execution_id, tenant_id=tenant, inputs=dict(raw) or None
        )
        await anyio.to_thread.run_sync(backends.queue.emit, EXECUTOR, execution_id, order.to_json())
        return _unchecked(execution_id, "resume")
    execution = stored
    if execution.state.current != State.PAUSED:
        raise ConflictError(
            f"execution '{execution_id}' is {execution.state.current}: only PAUSED executions "
            "can be resumed"
        )
    inputs = dict(raw)
    for input_id, upload in uploads.items():
        uri = (
            execution_uri(
                tenant, execution.namespace, execution.flow_id, execution_id, _scheme(backends)
            )
            + f"resume/{input_id}/{_safe_filename(upload.filename)}"
        )
        await anyio.to_thread.run_sync(backends.storage.put, uri, upload.file)
        inputs[input_id] = uri
    order = Resume(id=new_id(), execution_id=execution_id, tenant_id=tenant, inputs=inputs or None)
    await anyio.to_thread.run_sync(backends.queue.emit, EXECUTOR, execution_id, order.to_json())
    return execution_json(execution)


# ---------------------------------------------------------------- live view and files


@router.get(
    "/executions/{execution_id}/follow",
    summary="Follow an execution (SSE)",
    response_class=EventStream,
)
async def follow_execution(
    execution_id: str, request: Request, backends: BackendsDep, tenant: TenantDep
) -> Any:
    # the process's one consumer of `executions` holds its partitions, then this stream listens,
    # then the stored snapshot is read: nothing written meanwhile can slip between the two
    feed = live_feeds(request.app)[EXECUTIONS]
    await feed.ensure_ready()
    listener = feed.listen(execution_id)
    try:
        # None on Kafka while the repository is down: the stream starts with the next snapshot
        execution = await anyio.to_thread.run_sync(
            _stored_or_unknown, backends, tenant, execution_id
        )
    except BaseException:
        listener.close()
        raise

    async def events() -> AsyncIterator[str]:
        try:
            last = -1
            if execution is not None:
                yield sse_event(execution_json(execution))
                if execution.state.current.terminal:
                    return
                last = execution.sequence
            recheck = _Recheck()
            while True:
                try:
                    record = await listener.next(POLL_SECONDS)
                except FeedClosed:
                    return
                if record is None:
                    yield KEEPALIVE  # a gone client is noticed on this write
                    if not recheck.due():
                        continue
                    stored = await anyio.to_thread.run_sync(
                        _stored_quietly, backends, tenant, execution_id
                    )
                    if stored is None or stored.sequence <= last:
                        continue
                    last = stored.sequence
                    yield sse_event(execution_json(stored))
                    if stored.state.current.terminal:
                        return
                    continue
                recheck.reset()
                try:
                    snapshot = Execution.model_validate_json(record.value or b"")
                except ValueError:
                    continue
                if snapshot.sequence < last:
                    continue  # older than what the stream showed
                if (snapshot.tenant_id or tenant) != tenant:
                    continue  # an id of another tenant's execution shows nothing
                last = snapshot.sequence
                yield sse_event(execution_json(snapshot))
                if snapshot.state.current.terminal:
                    return
        finally:
            listener.close()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
        # also when the stream never started (the client left first): no listener leaks
        background=BackgroundTask(listener.close),
    )


class _Recheck:
    """When a quiet follow stream reads the stored state again: after 1 s of quiet, then 2, 4...
    up to 30 s between reads.

    The repository is a copy the indexer fills after the fact, so a snapshot written before the
    live feed took its position may be missing from the stored state read at the stream's start
    too: without a new snapshot (an execution that just ended) the stream would wait for ever.
    """

    FIRST = 1.0
    LONGEST = 30.0

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._wait = self.FIRST
        self._at = time.monotonic() + self._wait

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._at:
            return False
        self._wait = min(self._wait * 2, self.LONGEST)
        self._at = now + self._wait
        return True


def _stored_quietly(backends: Backends, tenant: str, execution_id: str) -> Execution | None:
    """The stored execution, or None when the repository does not answer (the stream goes on)."""
    try:
        return backends.repositories.executions.get(tenant, execution_id)
    except RepositoryError:
        return None


# ---------------------------------------------------------------- webhooks


def _webhook_trigger(flow: Flow, key: str, settings: Settings) -> Webhook | None:
    """The Webhook trigger whose key, rendered as Kestra renders it, is ``key`` (an enabled
    one first: a disabled one is returned to say so)."""
    webhooks = [t for t in flow.triggers if isinstance(t, Webhook)]
    for trigger in sorted(webhooks, key=lambda t: t.disabled):
        if not isinstance(trigger, Webhook):
            continue
        try:
            expected = render(trigger.key, _flow_variables(flow, trigger, settings))
        except LannerError as exc:
            # as Kestra: a key that cannot render matches no request, the others still work
            log.warning(
                "webhook %s of %s.%s: key not rendered: %s",
                trigger.id,
                flow.namespace,
                flow.id,
                exc,
            )
            continue
        # constant time: the key is the webhook's only secret
        if hmac.compare_digest(expected.encode(), key.encode()):
            return trigger
    return None


def _flow_variables(flow: Flow, trigger: Webhook, settings: Settings) -> dict[str, Any]:
    return {
        "flow": {
            "id": flow.id,
            "namespace": flow.namespace,
            "revision": flow.revision,
            "tenantId": flow.tenant_id,
        },
        "vars": flow.variables,
        "labels": dict(flow.labels),
        "trigger": {"id": trigger.id, "type": trigger.type},
        "envs": settings.template_envs(os.environ),
        "globals": settings.globals,
    }


def _multi(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in items:
        out.setdefault(key, []).append(value)
    return out


def _webhook_body(raw: bytes, content_type: str) -> Any:
    """The request body as ``trigger.body``: JSON when it parses, the text otherwise; a body
    declared JSON that does not parse is refused."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        media = content_type.split(";")[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            raise InputValidationError(
                [
                    Problem(
                        "body",
                        f"the body is declared {media} but is not JSON: {exc.msg} "
                        f"(line {exc.lineno}, column {exc.colno})",
                    )
                ]
            ) from None
        return text


def _webhook_disabled(backends: Backends, tenant: str, flow: Flow, trigger: Webhook) -> str | None:
    """Why the webhook may not start an execution now, or None."""
    if flow.disabled:
        return f"flow {flow.namespace}.{flow.id} is disabled"
    if trigger.disabled:
        return f"webhook trigger '{trigger.id}' of {flow.namespace}.{flow.id} is disabled"
    uid = trigger_uid(tenant, flow.namespace, flow.id, trigger.id)
    try:
        states = backends.repositories.triggers.find(tenant, flow.namespace, flow.id)
    except RepositoryError:
        # the repository is down: a webhook keeps creating executions (writes never wait for
        # it); a disable made through the API is honoured again once it answers
        return None
    for state in states:
        if state.uid == uid and state.disabled:
            return (
                f"webhook trigger '{trigger.id}' of {flow.namespace}.{flow.id} is disabled "
                "(through the API)"
            )
    return None


def _webhook_conditions_hold(
    flow: Flow, trigger: Webhook, variables: dict[str, Any], now: datetime
) -> bool:
    ctx = ConditionContext(namespace=flow.namespace, flow_id=flow.id, date=now, variables=variables)
    for index, condition in enumerate(trigger.conditions):
        try:
            if not condition.test(ctx):  # type: ignore[attr-defined]
                return False
        except Exception as exc:  # a template error in the condition: the caller must know
            raise InputValidationError(
                [
                    Problem(
                        f"triggers.{trigger.id}.conditions[{index}]", f"cannot be evaluated: {exc}"
                    )
                ]
            ) from None
    return True


async def _webhook(
    namespace: str,
    flow_id: str,
    key: str,
    request: Request,
    backends: Backends,
    tenant: str,
    wait: bool,
) -> Any:
    try:
        # from the flows topic on Kafka: a webhook works while the repository is down
        flow = await anyio.to_thread.run_sync(_flow_of, backends, tenant, namespace, flow_id)
    except NotFoundError:
        # Kestra's wording, which webhook callers may test for
        raise NotFoundError(f"Not Found: Flow not found: {namespace}.{flow_id}") from None
    except FlowValidationError as exc:  # stored before a plugin went away
        raise ConflictError(f"flow {namespace}.{flow_id} is invalid: {exc}") from None
    trigger = _webhook_trigger(flow, key, backends.settings)
    if trigger is None:
        raise NotFoundError(f"flow {namespace}.{flow_id} has no webhook trigger with this key")
    refused = await anyio.to_thread.run_sync(_webhook_disabled, backends, tenant, flow, trigger)
    if refused is not None:
        raise ConflictError(refused)
    body = _webhook_body(await request.body(), request.headers.get("content-type", ""))
    request_variables = {
        "body": body,
        "headers": _multi(list(request.headers.items())),
        "parameters": _multi(list(request.query_params.multi_items())),
    }
    variables = _flow_variables(flow, trigger, backends.settings)
    variables["trigger"] = {**variables["trigger"], **request_variables}
    now = datetime.now(UTC)
    if not _webhook_conditions_hold(flow, trigger, variables, now):
        return Response(status_code=204)  # Kestra: conditions not met, no execution
    try:
        raw_inputs = render_object(trigger.inputs, variables) if trigger.inputs else {}
    except LannerError as exc:
        raise InputValidationError(
            [Problem(f"triggers.{trigger.id}.inputs", f"cannot be rendered: {exc}")]
        ) from None
    execution = await create_execution(
        backends,
        tenant,
        flow,
        raw_inputs,
        {},
        {},
        trigger=ExecutionTrigger(id=trigger.id, type=trigger.type, variables=request_variables),
    )
    if not (wait or trigger.wait):
        return execution_json(execution)
    execution = await wait_terminal(backends, tenant, execution)
    if trigger.return_outputs:
        return execution.outputs or {}
    return execution_json(execution)


async def webhook(
    namespace: str,
    flow_id: str,
    key: str,
    request: Request,
    backends: BackendsDep,
    tenant: TenantDep,
) -> Any:
    """Trigger a flow through its Webhook trigger whose ``key`` matches.

    The request's body (JSON when it parses), headers and query parameters are the execution's
    ``trigger.body``, ``trigger.headers`` and ``trigger.parameters``. Answers (Kestra's): 200
    with the execution; 204 when the trigger's conditions refuse the request (no execution);
    404 for an unknown flow or key; 409 when the flow or the trigger is disabled (in the flow,
    or through the API); 422 for a body declared JSON that is not, or inputs that do not
    render. With the trigger's ``wait: true`` (or ``?wait=true``) the answer comes when the
    execution ends, and with ``returnOutputs: true`` it is the flow's outputs.
    """
    wait = request.query_params.get("wait", "").lower() == "true"
    return await _webhook(namespace, flow_id, key, request, backends, tenant, wait)


for _method in ("GET", "POST", "PUT"):
    router.add_api_route(
        "/executions/webhook/{namespace}/{flow_id}/{key}",
        webhook,
        methods=[_method],
        operation_id=f"webhook_{_method.lower()}",
        summary="Trigger a flow through its Webhook trigger",
    )


# ---------------------------------------------------------------- create (last: its path
# /executions/{namespace}/{flowId} would otherwise catch /executions/{id}/restart...)


@router.post(
    "/executions/{namespace}/{flow_id}",
    summary="Create an execution (inputs as multipart form fields and files, or a JSON object)",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {"schema": {"type": "object"}},
                "application/json": {"schema": {"type": "object"}},
            }
        }
    },
)
async def create(
    namespace: str,
    flow_id: str,
    request: Request,
    backends: BackendsDep,
    tenant: TenantDep,
    labels: Annotated[list[str] | None, Query(description="key:value, repeatable")] = None,
    wait: bool = False,
    schedule_date: Annotated[
        datetime | None,
        Query(alias="scheduleDate", description="ISO date-time: the execution starts then"),
    ] = None,
) -> Any:
    label_map = parse_labels(labels)
    flow = await anyio.to_thread.run_sync(_flow_of, backends, tenant, namespace, flow_id)
    raw, uploads = await _read_inputs(request)
    if schedule_date is not None and schedule_date.tzinfo is None:
        schedule_date = schedule_date.replace(tzinfo=UTC)
    execution = await create_execution(
        backends, tenant, flow, raw, uploads, label_map, schedule_date=schedule_date
    )
    if wait:
        execution = await wait_terminal(backends, tenant, execution)
    return execution_response(execution)
