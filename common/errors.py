"""Lanner's error tree.

    LannerError
    ├── FlowValidationError    a flow source is invalid (each problem has a path, a line, a reason)
    ├── InputValidationError   execution inputs do not match the flow's declared inputs
    ├── QueryError             a repository query out of bounds (page size, depth, cursor)
    ├── TemplateError          a template failed to parse or render
    ├── PropertyError          a task property's rendered value does not have the property's type
    ├── PluginError            an unknown task/trigger type or a plugin that misbehaves
    ├── NotFoundError          a flow, execution or file does not exist
    ├── TooLargeError          an upload over the configured size limit
    ├── ConflictError          the operation does not apply to the object's current state
    ├── QueueError
    │   └── MessageTooLargeError
    ├── RepositoryError
    └── StorageError
        └── StorageUriError

Adapters translate client-library exceptions into these with ``raise ... from exc`` so callers
never depend on a backend's own exception classes. The webserver maps each one to a 4xx/5xx JSON
body in one place (``webserver/errors.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


class LannerError(Exception):
    """Root of every error Lanner raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Problem:
    """One located problem in a user input: ``path`` like ``tasks[2].message``."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.path or '<root>'}{where}: {self.message}"


class _ProblemsError(LannerError):
    def __init__(self, problems: list[Problem], summary: str) -> None:
        self.problems = problems
        super().__init__(summary + ": " + "; ".join(str(p) for p in problems))


class FlowValidationError(_ProblemsError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, "Invalid flow")


class InputValidationError(_ProblemsError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, "Invalid inputs")


class QueryError(_ProblemsError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems, "Invalid query")


class TemplateError(LannerError):
    pass


class PropertyError(LannerError):
    pass


class PluginError(LannerError):
    pass


class NotFoundError(LannerError):
    pass


class TooLargeError(LannerError):
    """A request body or an uploaded file over the configured limit (HTTP 413)."""


class ConflictError(LannerError):
    pass


class QueueError(LannerError):
    pass


class MessageTooLargeError(QueueError):
    pass


class RecordsReturnedError(QueueError):
    """``produce_and_commit`` could not commit because the consumer group moved on (a
    rebalance this member has not served yet): nothing was written, and the records of the
    partitions it still holds will be polled again (the next poll serves the rebalance)."""


class RepositoryError(LannerError):
    pass


class StorageError(LannerError):
    pass


class StorageUriError(StorageError):
    """A URI the storage refuses: not ours, or pointing outside it (a user's mistake: 4xx)."""
