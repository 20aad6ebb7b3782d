"""An execution's files (Kestra's ``/executions/{id}/file`` and ``/file/metas``).

The webserver only streams: it never reads a file into memory, and never looks inside one
(workers alone touch storage content). A file belongs to an execution when its URI is under the
execution's folder (``lanner:///<tenant>/<namespace as folders>/<flow>/executions/<id>/``, or the
tenant-less folder of files written before the tenant was in the path); anything
else — another execution's file, ``..`` in any encoding, another scheme — is refused with a 422
that names the path, and an execution of another tenant is a 404.
"""

from __future__ import annotations

import posixpath
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from common.backends import Backends
from common.errors import InputValidationError, Problem
from common.storage.base import FileStat, execution_uri, legacy_execution_uri, object_key
from webserver._headers import attachment
from webserver.deps import BackendsDep, TenantDep
from webserver.routers.executions import _get_execution

router = APIRouter(tags=["executions"])

PathQuery = Annotated[str, Query(description="lanner:// URI of a file of the execution")]


def _stat_own_file(backends: Backends, tenant: str, execution_id: str, path: str) -> FileStat:
    execution = _get_execution(backends, tenant, execution_id)
    own = execution_uri(tenant, execution.namespace, execution.flow_id, execution_id)
    legacy = legacy_execution_uri(execution.namespace, execution.flow_id, execution_id)
    key = object_key(path)  # refuses traversal and foreign schemes (422)
    if not key.startswith((object_key(own), object_key(legacy))):
        raise InputValidationError(
            [Problem("path", f"'{path}' is not a file of execution {execution_id} ({own}...)")]
        )
    return backends.storage.stat(path)  # a missing file: 404 naming the URI


@router.get("/executions/{execution_id}/file", summary="Download a file of an execution")
async def download_file(
    execution_id: str, backends: BackendsDep, tenant: TenantDep, path: PathQuery
) -> Response:
    found = await anyio.to_thread.run_sync(_stat_own_file, backends, tenant, execution_id, path)
    chunks = await anyio.to_thread.run_sync(backends.storage.stream, path)
    name = posixpath.basename(object_key(path)) or "file"
    return StreamingResponse(
        chunks,
        media_type=found.content_type,
        headers={
            "Content-Disposition": attachment(name),
            "Content-Length": str(found.size),
        },
    )


@router.get("/executions/{execution_id}/file/metas", summary="Size and type of a file")
async def file_metas(
    execution_id: str, backends: BackendsDep, tenant: TenantDep, path: PathQuery
) -> dict[str, Any]:
    found = await anyio.to_thread.run_sync(_stat_own_file, backends, tenant, execution_id, path)
    return {
        "size": found.size,
        "contentType": found.content_type,
        "lastModified": found.last_modified.isoformat(),
    }
