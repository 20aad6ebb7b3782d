"""One place mapping errors to JSON responses.

``FlowValidationError`` / ``InputValidationError`` → 422 with every located problem,
``QueryError`` (a search out of bounds) → 400 naming the parameter, ``NotFoundError`` → 404,
``ConflictError`` → 409, backend outages → 503, request validation → 422 naming the field,
anything unexpected → 500 without a stack trace (logged here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import (
    ConflictError,
    FlowValidationError,
    InputValidationError,
    LannerError,
    NotFoundError,
    PluginError,
    Problem,
    QueryError,
    QueueError,
    RepositoryError,
    StorageError,
    StorageUriError,
    TemplateError,
    TooLargeError,
)

log = logging.getLogger("lanner.webserver")

_STATUS: list[tuple[type[LannerError], int]] = [
    (FlowValidationError, 422),
    (InputValidationError, 422),
    (QueryError, 400),
    (TemplateError, 422),
    (PluginError, 422),
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (QueueError, 503),
    (RepositoryError, 503),
    (StorageUriError, 422),
    (StorageError, 500),
]


def problem_json(problem: Problem) -> dict[str, Any]:
    return {"path": problem.path, "message": problem.message, "line": problem.line}


def error_body(message: str, problems: Sequence[Problem] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if problems:
        body["errors"] = [problem_json(p) for p in problems]
    return body


def status_of(exc: LannerError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


async def _lanner_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LannerError)
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    problems = getattr(exc, "problems", ())
    return JSONResponse(error_body(exc.message, problems), status_code=status)


def _field(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("query", "path", "header", "cookie", "body", "form"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


async def _request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [Problem(_field(err.get("loc", ())), str(err.get("msg"))) for err in exc.errors()]
    summary = "; ".join(f"{p.path}: {p.message}" for p in problems)
    return JSONResponse(error_body(f"Invalid request: {summary}", problems), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {"message": f"Internal server error ({type(exc).__name__}); see the server logs"},
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LannerError, _lanner_error)
    app.add_exception_handler(RequestValidationError, _request_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
