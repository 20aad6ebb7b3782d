"""Internal storage: where files (FILE inputs, large outputs, script output files) live.

Files are addressed by ``lanner:///<tenant>/<namespace as folders>/<flow>/executions/<id>/...``
URIs, Kestra's multi-tenant layout with our scheme (see ``execution_uri``; KV and namespace files
are tenant-first too). Files written before the tenant was part of the path
(``lanner:///<namespace as folders>/<flow>/executions/<id>/...``, ``legacy_execution_uri``) stay
readable by their URI. A file's bytes go in and out in chunks
(``put`` of a readable stream, ``stream``), so a file never has to fit in memory.

Kestra's ``kestra:///...`` URIs name the same files: every method that reads a URI accepts both
schemes. Which one Lanner writes in outputs and inputs is the setting ``storage_uri_scheme``
(``lanner`` by default; ``kestra`` for flows and scripts that test the prefix), passed to
``execution_uri`` / ``with_scheme`` by the components that make URIs (worker, webserver).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol
from urllib.parse import unquote

from common.errors import StorageUriError

SCHEME = "lanner://"
KESTRA_SCHEME = "kestra://"
SCHEMES = (SCHEME, KESTRA_SCHEME)
CHUNK_SIZE = 1024 * 1024
#: the tenant of the files written before tenants were part of the path (``common.repository``'s)
DEFAULT_TENANT = "main"
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class FileStat:
    size: int
    content_type: str
    last_modified: datetime


def object_key(uri: str) -> str:
    """The path of ``uri`` inside the storage (``company/team/f/executions/e1/a.txt``; empty
    for the root), or ``StorageUriError`` for a URI that is not ours or could leave the storage:
    ``..`` segments, also percent-encoded, backslashes and NUL bytes."""
    scheme = next((s for s in SCHEMES if uri.startswith(s)), None)
    if scheme is None:
        raise StorageUriError(f"'{uri}' is not an internal storage URI (expected {SCHEME}/...)")
    # `lanner://x/y` is read as `lanner:///x/y` (queue offload references were written so)
    relative = uri[len(scheme) :].lstrip("/")
    decoded = unquote(relative)
    if "\\" in decoded or "\x00" in decoded:
        raise StorageUriError(f"'{uri}': backslashes and NUL bytes are not allowed")
    if any(part in ("..", ".") for part in decoded.split("/")):
        raise StorageUriError(f"'{uri}' points outside the internal storage")
    return relative


def guess_content_type(uri: str) -> str:
    return mimetypes.guess_type(uri)[0] or DEFAULT_CONTENT_TYPE


def is_storage_uri(value: object) -> bool:
    """True for a ``lanner://`` or ``kestra://`` string."""
    return isinstance(value, str) and value.startswith(SCHEMES)


def scheme_of(name: str) -> str:
    """``lanner://`` or ``kestra://`` for the setting ``storage_uri_scheme`` (``lanner``,
    ``kestra``)."""
    return KESTRA_SCHEME if name == "kestra" else SCHEME


def with_scheme(uri: str, scheme: str = SCHEME) -> str:
    """``uri`` (either scheme) written with ``scheme``."""
    for known in SCHEMES:
        if uri.startswith(known):
            return scheme + uri[len(known) :]
    return uri


def execution_uri(
    tenant: str, namespace: str, flow_id: str, execution_id: str, scheme: str = SCHEME
) -> str:
    """Where an execution's files live, in Kestra's multi-tenant layout (``kestra:///main/io/
    kestra/tests/flow/executions/<id>/``): the tenant first, then the namespace's dots as
    folders; ends with ``/``."""
    folders = namespace.replace(".", "/")
    return f"{scheme}/{tenant}/{folders}/{flow_id}/executions/{execution_id}/"


def legacy_execution_uri(
    namespace: str, flow_id: str, execution_id: str, scheme: str = SCHEME
) -> str:
    """Where an execution's files lived before the tenant was part of the path
    (``lanner:///<namespace as folders>/<flow>/executions/<id>/``): still read, never written."""
    return f"{scheme}/{namespace.replace('.', '/')}/{flow_id}/executions/{execution_id}/"


def execution_folders(tenant: str, namespace: str, flow_id: str, execution_id: str) -> list[str]:
    """Every folder that may hold an execution's files (the tenant-first one, and the legacy
    one of files written before): what deleting an execution's files deletes."""
    return [
        execution_uri(tenant, namespace, flow_id, execution_id),
        legacy_execution_uri(namespace, flow_id, execution_id),
    ]


class ForeignStorageUriError(StorageUriError):
    """A task read (or wrote, deleted) a URI outside its tenant's part of the storage."""


def tenant_confinement(
    tenant: str, namespace: str, flow_id: str, execution_id: str
) -> Callable[[str], str]:
    """The check a task's storage accesses go through: returns the URI, or raises
    ``ForeignStorageUriError`` ("... belongs to another tenant") for a URI a task of ``tenant``
    may not touch. Allowed:

    - everything under ``lanner:///<tenant>/`` (execution files, KV, namespace files);
    - the tenant-less folder of the task's own execution (files written before the tenant was
      part of the path: a restart or replay of such an execution reads them);
    - for the default tenant ``main`` only, tenant-less URIs under the flow's namespace folders
      (``lanner:///company/team/...``: earlier executions' files of the namespace, and files a
      ``FileTrigger`` found before it watched ``lanner:///<tenant>/...``). Before tenants were
      in the path every tenant wrote there, so other tenants get no such access.

    Kestra's ``read()`` is stricter (the current execution's files only: "didn't belong to the
    current execution", ``ReadFileFunction.validateFileUri``); Lanner passes files between
    executions of a tenant (subflow outputs, ``ForEachItem``), so the tenant is the boundary.
    """
    own = f"{tenant}/"
    legacy_own = object_key(legacy_execution_uri(namespace, flow_id, execution_id))
    legacy_namespace = namespace.replace(".", "/") + "/" if tenant == DEFAULT_TENANT else None

    def check(uri: str) -> str:
        uri = str(uri)
        key = object_key(uri)  # foreign schemes and `..` are refused as before
        if key.startswith((own, legacy_own)):
            return uri
        if legacy_namespace is not None and key.startswith(legacy_namespace):
            return uri
        raise ForeignStorageUriError(
            f"Unable to access the file '{uri}': it belongs to another tenant (a task of tenant "
            f"'{tenant}' may only use files under {SCHEME}/{tenant}/)"
        )

    return check


class Storage(Protocol):
    """Every method raises ``StorageError`` for a URI that is not ``lanner:///...`` or that
    points outside the storage (``..``), and ``NotFoundError`` for a file that does not exist."""

    def put(self, uri: str, data: bytes | BinaryIO, content_type: str | None = None) -> str:
        """Stores ``data`` (bytes, or a binary stream read in chunks) at ``uri``, replacing any
        file there; readers see the old file or the new one, never a part. Returns ``uri``.
        ``content_type``: kept where the backend can keep it (else guessed from the name)."""
        ...

    def get(self, uri: str) -> bytes: ...

    def stream(self, uri: str) -> Iterator[bytes]:
        """The file's bytes in chunks of at most ``CHUNK_SIZE``; ``NotFoundError`` at once."""
        ...

    def size(self, uri: str) -> int: ...

    def stat(self, uri: str) -> FileStat:
        """Size, content type and last modification of the file at ``uri``."""
        ...

    def exists(self, uri: str) -> bool:
        """True if a file (not a folder) is at ``uri``."""
        ...

    def delete(self, uri: str) -> bool:
        """Deletes the file at ``uri``; False if there was none."""
        ...

    def list(self, prefix: str) -> list[str]:
        """URIs (in ``lanner:///`` form, sorted) of every file under the folder ``prefix``."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Deletes every file under the folder ``prefix`` (never the whole storage); returns
        how many were deleted."""
        ...
