"""Logs of an execution: search (level and task run filters), download, follow (SSE)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from common.errors import InputValidationError, Problem
from common.models.messages import LogEntry
from common.queue.base import LOGS
from common.repository.sqlite import LOG_LEVELS, level_number
from webserver._sse import KEEPALIVE, close_quietly, records_for_key, sse_event, subscribe_live
from webserver.deps import BackendsDep, TenantDep

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


@router.get("/logs/{execution_id}/download", summary="Logs of an execution as text")
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
        headers={"Content-Disposition": f'attachment; filename="{execution_id}.log"'},
    )


@router.get("/logs/{execution_id}/follow", summary="Follow the logs of an execution (SSE)")
async def follow_logs(
    execution_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    min_level: LevelQuery = None,
) -> Any:
    level = _check_level(min_level)
    floor = level_number(level)
    subscription = await subscribe_live(backends.queue, LOGS, "logs")

    async def events() -> AsyncIterator[str]:
        seen: set[str] = set()
        try:
            stored = await anyio.to_thread.run_sync(
                lambda: backends.repositories.logs.find(tenant, execution_id, None, level)
            )
            for entry in stored:
                body = entry.to_json()
                seen.add(hashlib.sha256(body).hexdigest())
                yield sse_event(entry.to_dict())
            async for record in records_for_key(subscription, execution_id):
                if record is None:
                    yield KEEPALIVE
                    execution = await anyio.to_thread.run_sync(
                        backends.repositories.executions.get, tenant, execution_id
                    )
                    if execution is not None and execution.state.current.terminal:
                        return
                    continue
                digest = hashlib.sha256(record.value or b"").hexdigest()
                try:
                    entry = LogEntry.model_validate_json(record.value or b"")
                except ValueError:
                    continue
                if level_number(entry.level) < floor:
                    continue
                if digest in seen or hashlib.sha256(entry.to_json()).hexdigest() in seen:
                    continue
                seen.add(digest)
                yield sse_event(entry.to_dict())
        finally:
            await close_quietly(subscription)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
