"""Internal storage: where files (FILE inputs, large outputs, script output files) live.

Files are addressed by ``lanner:///<namespace as folders>/<flow>/executions/<id>/...`` URIs,
Kestra's layout with our scheme (see ``execution_uri``).
"""

from __future__ import annotations

from typing import Protocol

SCHEME = "lanner://"


def execution_uri(namespace: str, flow_id: str, execution_id: str) -> str:
    """Where an execution's files live, in Kestra's layout (``kestra:///io/kestra/tests/flow/
    executions/<id>/``): the namespace's dots become folders; ends with ``/``."""
    return f"{SCHEME}/{namespace.replace('.', '/')}/{flow_id}/executions/{execution_id}/"


class Storage(Protocol):
    def put(self, uri: str, data: bytes) -> str: ...

    def get(self, uri: str) -> bytes: ...

    def exists(self, uri: str) -> bool: ...

    def delete(self, uri: str) -> bool: ...

    def list(self, prefix: str) -> list[str]: ...
