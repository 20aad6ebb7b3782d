"""Logs: search across executions and follow them live (SSE); the logs of one execution
(level and task run filters), their download and their live follow."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask

from common.errors import InputValidationError, Problem
from common.models.messages import LogEntry
from common.queue.base import LOGS
from common.repository.base import LOG_LEVELS, MAX_PAGE_SIZE, LogQuery, level_number
from webserver._headers import attachment
from webserver._live import FeedClosed
from webserver._sse import KEEPALIVE, POLL_SECONDS, EventStream, sse_event
from webserver.deps import BackendsDep, TenantDep, live_feeds

router = APIRouter(tags=["logs"])

LevelQuery = Annotated[
    str | None, Query(alias="minLevel", description="TRACE, DEBUG, INFO, WARN or ERROR")
]


def _check_level(level: str | None) -> str | None:
    if level is None:
        return None
    name = "WARN" if level.upper() == "WARNING" else level.upper()
    if name not in LOG_LEVELS:
        raise InputValidationError(
            [Problem("minLevel", f"'{level}' is not a level: use one of {', '.join(LOG_LEVELS)}")]
        )
    return name


def log_line(entry: LogEntry) -> str:
    task = f" [{entry.task_id}]" if entry.task_id else ""
    return f"{entry.timestamp.isoformat()} {entry.level:<5}{task} {entry.message}"


def _log_query(
    tenant: str,
    namespace: str | None,
    flow_id: str | None,
    task_id: str | None,
    min_level: str | None,
    start_date: datetime | None,
    end_date: datetime | None,
    q: str | None,
    page: int = 1,
    size: int = 50,
    sort: str | None = None,
    after: str | None = None,
) -> LogQuery:
    return LogQuery(
        tenant_id=tenant,
        namespace=namespace or None,
        flow_id=flow_id or None,
        task_id=task_id or None,
        min_level=_check_level(min_level),
        start_date=start_date,
        end_date=end_date,
        q=q or None,
        page=page,
        size=size,
        sort_desc=not (sort or "").endswith(":asc"),
        after=after,
    )


def matches(entry: LogEntry, query: LogQuery) -> bool:
    """Whether a live entry belongs to what ``query`` searches (its paging aside)."""
    if (entry.tenant_id or "main") != query.tenant_id:
        return False
    if query.namespace and not (
        entry.namespace == query.namespace or entry.namespace.startswith(query.namespace + ".")
    ):
        return False
    if query.flow_id and entry.flow_id != query.flow_id:
        return False
    if query.task_id and entry.task_id != query.task_id:
        return False
    if level_number(entry.level) < level_number(query.min_level):
        return False
    if query.start_date is not None and entry.timestamp < query.start_date:
        return False
    if query.end_date is not None and entry.timestamp > query.end_date:
        return False
    return not query.q or query.q.lower() in entry.message.lower()


FlowIdQuery = Annotated[str | None, Query(alias="flowId")]
TaskIdQuery = Annotated[str | None, Query(alias="taskId")]
StartQuery = Annotated[datetime | None, Query(alias="startDate")]
EndQuery = Annotated[datetime | None, Query(alias="endDate")]


@router.get("/logs/search", summary="Search logs across executions")
async def search_logs(
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str | None = None,
    flow_id: FlowIdQuery = None,
    task_id: TaskIdQuery = None,
    min_level: LevelQuery = None,
    start_date: StartQuery = None,
    end_date: EndQuery = None,
    q: Annotated[str | None, Query(description="text in the message")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    sort: Annotated[str | None, Query(description="timestamp:asc or timestamp:desc")] = None,
    after: Annotated[str | None, Query(description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    query = _log_query(
        tenant, namespace, flow_id, task_id, min_level, start_date, end_date, q,
        page, size, sort, after,
    )  # fmt: skip
    found = await anyio.to_thread.run_sync(backends.repositories.logs.search, query)
    return {
        "results": [e.to_dict() for e in found.results],
        "total": found.total,
        "next": found.next,
    }


@router.get(
    "/logs/follow",
    summary="Follow the logs matching a search (SSE)",
    response_class=EventStream,
)
async def follow_search(
    request: Request,
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str | None = None,
    flow_id: FlowIdQuery = None,
    task_id: TaskIdQuery = None,
    min_level: LevelQuery = None,
    q: str | None = None,
) -> Any:
    """New log entries as they are published (not the stored ones: search for those), until
    the client leaves."""
    query = _log_query(tenant, namespace, flow_id, task_id, min_level, None, None, q)
    feed = live_feeds(request.app)[LOGS]
    await feed.ensure_ready()
    listener = feed.listen(None)  # every key: the search filters

    async def events() -> AsyncIterator[str]:
        try:
            yield KEEPALIVE  # the stream is open: entries from now on are sent
            while True:
                try:
                    record = await listener.next(POLL_SECONDS)
                except FeedClosed:
                    return
                if record is None:
                    yield KEEPALIVE
                    continue
                try:
                    entry = LogEntry.model_validate_json(record.value or b"")
                except ValueError:
                    continue
                if matches(entry, query):
                    yield sse_event(entry.to_dict())
        finally:
            listener.close()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
        background=BackgroundTask(listener.close),
    )


@router.get("/logs/{execution_id}", summary="Logs of an execution")
async def execution_logs(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    min_level: LevelQuery = None,
    task_run_id: Annotated[str | None, Query(alias="taskRunId")] = None,
    task_id: Annotated[str | None, Query(alias="taskId")] = None,
) -> list[dict[str, Any]]:
    level = _check_level(min_level)
    logs = await anyio.to_thread.run_sync(
        lambda: backends.repositories.logs.find(tenant, execution_id, task_run_id, level)
    )
    return [e.to_dict() for e in logs if task_id is None or e.task_id == task_id]


@router.get(
    "/logs/{execution_id}/download",
    summary="Logs of an execution as text",
    response_class=PlainTextResponse,
)
async def download_logs(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    min_level: LevelQuery = None,
    task_run_id: Annotated[str | None, Query(alias="taskRunId")] = None,
) -> Response:
    level = _check_level(min_level)
    logs = await anyio.to_thread.run_sync(
        lambda: backends.repositories.logs.find(tenant, execution_id, task_run_id, level)
    )
    text = "".join(log_line(e) + "\n" for e in logs)
    return Response(
        text,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": attachment(f"{execution_id}.log")},
    )


@router.get(
    "/logs/{execution_id}/follow",
    summary="Follow the logs of an execution (SSE)",
    response_class=EventStream,
)
async def follow_logs(
    execution_id: str,
    request: Request,
    backends: BackendsDep,
    tenant: TenantDep,
    min_level: LevelQuery = None,
) -> Any:
    level = _check_level(min_level)
    floor = level_number(level)
    feed = live_feeds(request.app)[LOGS]
    await feed.ensure_ready()
    listener = feed.listen(execution_id)

    seen: set[str] = set()

    async def stored_unseen() -> AsyncIterator[str]:
        stored = await anyio.to_thread.run_sync(
            lambda: backends.repositories.logs.find(tenant, execution_id, None, level)
        )
        for entry in stored:
            digest = hashlib.sha256(entry.to_json()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                yield sse_event(entry.to_dict())

    async def events() -> AsyncIterator[str]:
        try:
            async for event in stored_unseen():
                yield event
            while True:
                try:
                    record = await listener.next(POLL_SECONDS)
                except FeedClosed:
                    return
                if record is None:
                    yield KEEPALIVE
                    execution = await anyio.to_thread.run_sync(
                        backends.repositories.executions.get, tenant, execution_id
                    )
                    if execution is not None and execution.state.current.terminal:
                        # lines written before the feed took its position and indexed since
                        # the first read are in neither: one last read sends them
                        async for event in stored_unseen():
                            yield event
                        return
                    continue
                digest = hashlib.sha256(record.value or b"").hexdigest()
                try:
                    entry = LogEntry.model_validate_json(record.value or b"")
                except ValueError:
                    continue
                if level_number(entry.level) < floor:
                    continue
                if (entry.tenant_id or tenant) != tenant:
                    continue  # an id of another tenant's execution shows nothing
                canonical = hashlib.sha256(entry.to_json()).hexdigest()
                if digest in seen or canonical in seen:
                    continue
                seen.update((digest, canonical))  # the last read compares canonical ones
                yield sse_event(entry.to_dict())
        finally:
            listener.close()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
        # also when the stream never started (the client left first): no listener leaks
        background=BackgroundTask(listener.close),
    )
