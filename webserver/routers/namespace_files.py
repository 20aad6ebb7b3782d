"""A namespace's files (Kestra's ``NamespaceFileController``, ``/api/v1/namespaces/{ns}/files``).

Files live in internal storage (``common.storage.namespace_files``). Shapes are Kestra's: search
answers a list of paths (``/folder/file.txt``), stats and directory listings give
``FileAttributes`` (``fileName``, ``lastModifiedTime``, ``creationTime``, ``type`` File or
Directory, ``size``, ``metadata``), a file downloads as ``application/octet-stream``, an upload
is a multipart form with the part ``fileContent`` (a ``.zip`` is extracted), ``PUT ?from=&to=``
moves, ``DELETE ?path=`` deletes a file or a folder. Paths that leave the namespace (``..``) or
name Kestra's forbidden ``/_flows`` folder are a 422 naming the parameter.
"""

from __future__ import annotations

import io
import zipfile
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from common.errors import InputValidationError, Problem
from common.storage.namespace_files import NamespaceFiles, guard
from webserver._headers import OctetStream, attachment
from webserver.deps import BackendsDep, TenantDep

router = APIRouter(tags=["Files"])

PathQuery = Annotated[str | None, Query(description="The path of a file or folder (/a/b.txt)")]


def _files(backends: Any, tenant: str, namespace: str) -> NamespaceFiles:
    return NamespaceFiles(backends.storage, tenant, namespace)


@router.get("/namespaces/{namespace}/files/search", summary="Find files whose path contains q")
async def search(
    namespace: str, backends: BackendsDep, tenant: TenantDep, q: str = Query()
) -> list[str]:
    files = _files(backends, tenant, namespace)
    paths = await anyio.to_thread.run_sync(files.all)
    return [path for path in paths if q in path]


@router.get(
    "/namespaces/{namespace}/files",
    summary="Get namespace file content",
    response_class=StreamingResponse,
)
async def get_file(
    namespace: str, backends: BackendsDep, tenant: TenantDep, path: str = Query()
) -> StreamingResponse:
    files = _files(backends, tenant, namespace)
    normalized = guard(path)
    await anyio.to_thread.run_sync(files.stat, normalized)  # 404 naming the path
    chunks = await anyio.to_thread.run_sync(files.stream, normalized)
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.get("/namespaces/{namespace}/files/stats", summary="Get namespace file stats")
async def stats(
    namespace: str, backends: BackendsDep, tenant: TenantDep, path: PathQuery = None
) -> dict[str, Any]:
    files = _files(backends, tenant, namespace)
    found = await anyio.to_thread.run_sync(files.stat, guard(path or "/"))
    return found.to_json()


@router.get("/namespaces/{namespace}/files/directory", summary="List directory content")
async def list_directory(
    namespace: str, backends: BackendsDep, tenant: TenantDep, path: PathQuery = None
) -> list[dict[str, Any]]:
    files = _files(backends, tenant, namespace)
    found = await anyio.to_thread.run_sync(files.list_directory, guard(path or "/"))
    return [entry.to_json() for entry in found]


@router.post("/namespaces/{namespace}/files/directory", summary="Create a directory")
async def create_directory(
    namespace: str, backends: BackendsDep, tenant: TenantDep, path: PathQuery = None
) -> None:
    files = _files(backends, tenant, namespace)
    await anyio.to_thread.run_sync(files.create_directory, guard(path or "/"))


@router.post(
    "/namespaces/{namespace}/files",
    summary="Create a file (a .zip is extracted)",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"fileContent": {"type": "string", "format": "binary"}},
                    }
                }
            }
        }
    },
)
async def create_file(
    namespace: str,
    request: Request,
    backends: BackendsDep,
    tenant: TenantDep,
    path: str = Query(),
) -> None:
    files = _files(backends, tenant, namespace)
    target = guard(path)
    form = await request.form()
    upload = form.get("fileContent")
    if not isinstance(upload, UploadFile):
        raise InputValidationError([Problem("fileContent", "a file part is required")])
    if (upload.filename or "").lower().endswith(".zip"):
        data = await upload.read()

        def extract() -> None:
            try:
                archive = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile as exc:
                raise InputValidationError([Problem("fileContent", str(exc))]) from exc
            entries = [i for i in archive.infolist() if not i.is_dir()]
            names = [guard("/" + i.filename, "fileContent") for i in entries]  # all or none
            for info, name in zip(entries, names, strict=True):
                files.put(name, archive.read(info))

        await anyio.to_thread.run_sync(extract)
        return

    def store() -> None:
        upload.file.seek(0)
        files.put(target, upload.file)

    await anyio.to_thread.run_sync(store)


@router.get(
    "/namespaces/{namespace}/files/export",
    summary="Export namespace files as a ZIP",
    response_class=OctetStream,
)
async def export(namespace: str, backends: BackendsDep, tenant: TenantDep) -> Response:
    files = _files(backends, tenant, namespace)

    def build() -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files.all():
                archive.writestr(path.lstrip("/"), files.get(path))
        return buffer.getvalue()

    content = await anyio.to_thread.run_sync(build)
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": attachment(f"{namespace}_files.zip")},
    )


@router.put("/namespaces/{namespace}/files", summary="Move a file or directory")
async def move(
    namespace: str,
    backends: BackendsDep,
    tenant: TenantDep,
    from_: str = Query(alias="from"),
    to: str = Query(),
) -> None:
    files = _files(backends, tenant, namespace)
    source, target = guard(from_, "from"), guard(to, "to")
    await anyio.to_thread.run_sync(files.move, source, target)


@router.delete("/namespaces/{namespace}/files", summary="Delete a file or directory")
async def delete(
    namespace: str, backends: BackendsDep, tenant: TenantDep, path: str = Query()
) -> None:
    files = _files(backends, tenant, namespace)
    await anyio.to_thread.run_sync(files.delete, guard(path))
