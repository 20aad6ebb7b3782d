"""Internal storage: where files (FILE inputs, large outputs, script output files) live.

Files are addressed by ``lanner://<tenant>/<namespace>/<flow>/executions/<id>/...`` URIs.
"""

from __future__ import annotations

from typing import Protocol

SCHEME = "lanner://"


class Storage(Protocol):
    def put(self, uri: str, data: bytes) -> str: ...

    def get(self, uri: str) -> bytes: ...

    def exists(self, uri: str) -> bool: ...

    def delete(self, uri: str) -> bool: ...

    def list(self, prefix: str) -> list[str]: ...
