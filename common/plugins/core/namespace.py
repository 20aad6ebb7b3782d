"""Core plugins: namespace files (Kestra's ``io.kestra.plugin.core.namespace.UploadFiles``,
``DownloadFiles``, ``DeleteFiles``), on ``common.storage.namespace_files.NamespaceFiles``.

``files`` patterns follow Kestra's ``PathMatcherPredicate``: ``glob:`` / ``regex:`` prefixes, and
a bare pattern starting with a word character matches at any depth (``**/`` is added).
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar, Literal

from pydantic import Field

from common.errors import LannerError, NotFoundError
from common.plugins.base import RunContext, RunnableTask
from common.storage.namespace_files import NamespaceFiles, path_matcher

from ._support import TaskFailed, worker_context


def _namespace(ctx: RunContext, namespace: str | None) -> NamespaceFiles:
    rendered = str(ctx.render(namespace)) if namespace is not None else None
    try:
        return worker_context(ctx).namespace_files(rendered)
    except LannerError as exc:
        raise TaskFailed(str(exc)) from exc


def _patterns(ctx: RunContext, files: str | list[str]) -> list[str]:
    rendered = ctx.render(files)
    if isinstance(rendered, str):
        return [rendered]
    if isinstance(rendered, list):
        return [str(p) for p in rendered]
    raise TaskFailed("The files property must be a string or a list of strings")


def _join(destination: str, path: str) -> str:
    return "/" + "/".join(p for p in (destination + "/" + path).split("/") if p)


class UploadFiles(RunnableTask):
    """Uploads files to a namespace: ``filesMap`` (target path → internal-storage URI, or its
    JSON) and/or ``files`` (patterns of the task's working directory), under ``destination``;
    ``conflict``: OVERWRITE (default), ERROR or SKIP."""

    TYPE: ClassVar[str] = "lanner.core.namespace.UploadFiles"
    namespace: str | None = None
    files: list[str] | None = None
    files_map: dict[str, Any] | str | None = Field(default=None, alias="filesMap")
    destination: str = "/"
    conflict: Literal["OVERWRITE", "ERROR", "SKIP"] = "OVERWRITE"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        if self.files is None and self.files_map is None:
            raise TaskFailed("files or filesMap is required")
        target = _namespace(ctx, self.namespace)
        destination = str(ctx.render(self.destination))
        uploaded: list[str] = []
        try:
            if self.files is not None:
                root = ctx.working_dir
                matcher = path_matcher(
                    p if p.startswith(("glob:", "regex:")) else "glob:/" + p.lstrip("/")
                    for p in _patterns(ctx, self.files)
                )
                for folder, _, names in os.walk(root):
                    for name in sorted(names):
                        local = os.path.join(folder, name)
                        relative = "/" + os.path.relpath(local, root).replace(os.sep, "/")
                        if matcher.fullmatch(relative):
                            path = _join(destination, relative)
                            with open(local, "rb") as source:
                                done = target.put(path, source, self.conflict)
                            uploaded += [done] if done else []
            if self.files_map is not None:
                mapping = ctx.render(self.files_map)
                if isinstance(mapping, str):
                    mapping = json.loads(mapping)
                if not isinstance(mapping, dict):
                    raise TaskFailed("filesMap must be a map of target path to file URI")
                for path, uri in mapping.items():
                    if not isinstance(uri, str):
                        raise TaskFailed("filesMap must be a Map<String, String>")
                    try:
                        data = ctx.get_file(uri)
                    except NotFoundError:
                        continue  # Kestra uploads only the files that exist
                    done = target.put(_join(destination, str(path)), data, self.conflict)
                    uploaded += [done] if done else []
        except LannerError as exc:
            raise TaskFailed(str(exc)) from exc
        for path in uploaded:
            ctx.log("DEBUG", f"File '{path}' added to namespace '{target.namespace}'.")
        return {}


class DownloadFiles(RunnableTask):
    """Copies the namespace files matching ``files`` to the execution's internal storage;
    outputs ``files``: namespace path → ``lanner://`` URI."""

    TYPE: ClassVar[str] = "lanner.core.namespace.DownloadFiles"
    namespace: str
    files: str | list[str]
    destination: str = ""

    def run(self, ctx: RunContext) -> dict[str, Any]:
        source = _namespace(ctx, self.namespace)
        destination = str(ctx.render(self.destination))
        wctx = worker_context(ctx)
        downloaded: dict[str, str] = {}
        for path in source.matching(_patterns(ctx, self.files)):
            name = (destination.rstrip("/") + path).lstrip("/")
            downloaded[path] = wctx.put_data(name, source.get(path))
        ctx.metric("downloaded", len(downloaded))
        return {"files": downloaded}


class DeleteFiles(RunnableTask):
    """Deletes the namespace files matching ``files``."""

    TYPE: ClassVar[str] = "lanner.core.namespace.DeleteFiles"
    namespace: str
    files: str | list[str]

    def run(self, ctx: RunContext) -> dict[str, Any]:
        target = _namespace(ctx, self.namespace)
        count = 0
        for path in target.matching(_patterns(ctx, self.files)):
            if target.delete(path):
                ctx.log("DEBUG", f"Deleted {path}")
                count += 1
        ctx.metric("deleted", count)
        return {}


PLUGINS: list[type] = [UploadFiles, DownloadFiles, DeleteFiles]
