"""Internal storage: where files (FILE inputs, large outputs, script output files) live.

Files are addressed by ``lanner:///<namespace as folders>/<flow>/executions/<id>/...`` URIs,
Kestra's layout with our scheme (see ``execution_uri``). A file's bytes go in and out in chunks
(``put`` of a readable stream, ``stream``), so a file never has to fit in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Protocol

SCHEME = "lanner://"
CHUNK_SIZE = 1024 * 1024


def execution_uri(namespace: str, flow_id: str, execution_id: str) -> str:
    """Where an execution's files live, in Kestra's layout (``kestra:///io/kestra/tests/flow/
    executions/<id>/``): the namespace's dots become folders; ends with ``/``."""
    return f"{SCHEME}/{namespace.replace('.', '/')}/{flow_id}/executions/{execution_id}/"


class Storage(Protocol):
    """Every method raises ``StorageError`` for a URI that is not ``lanner:///...`` or that
    points outside the storage (``..``), and ``NotFoundError`` for a file that does not exist."""

    def put(self, uri: str, data: bytes | BinaryIO) -> str:
        """Stores ``data`` (bytes, or a binary stream read in chunks) at ``uri``, replacing any
        file there; readers see the old file or the new one, never a part. Returns ``uri``."""
        ...

    def get(self, uri: str) -> bytes: ...

    def stream(self, uri: str) -> Iterator[bytes]:
        """The file's bytes in chunks of at most ``CHUNK_SIZE``; ``NotFoundError`` at once."""
        ...

    def size(self, uri: str) -> int: ...

    def exists(self, uri: str) -> bool:
        """True if a file (not a folder) is at ``uri``."""
        ...

    def delete(self, uri: str) -> bool:
        """Deletes the file at ``uri``; False if there was none."""
        ...

    def list(self, prefix: str) -> list[str]:
        """URIs (in ``lanner:///`` form, sorted) of every file under the folder ``prefix``."""
        ...
