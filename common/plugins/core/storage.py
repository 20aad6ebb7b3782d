"""Core plugins: internal storage (``lanner.core.storage.Write``, ``Delete``, ``Size``,
``Concat``, ``Split``, ``Reverse``, ``DeduplicateItems``, ``FilterItems``). Reading a file is
``{{ read(uri) }}`` in a template. The row tasks read and write row files (``_rows``) line by
line: a file is never held in memory."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Literal

from pydantic import Field

from common.errors import NotFoundError
from common.plugins.base import PollingContext, PollingTrigger, RunContext, RunnableTask
from common.plugins.dynamic import DynamicBool, DynamicPositive, resolve

from . import _rows
from ._support import TaskFailed, WorkerContext, worker_context

_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """``1024``, ``10KB``, ``5MB`` (binary multiples, as Micronaut's ``DataSize``)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a size (examples: 512, 10KB, 5MB)")
    unit = match.group(2).upper().rstrip("B") or ""
    return int(match.group(1)) * _UNITS[unit]


def _extension(ext: str) -> str:
    return ext if not ext or ext.startswith(".") else "." + ext


class Write(RunnableTask):
    """Writes ``content`` to a new internal-storage file; outputs its ``uri``."""

    TYPE: ClassVar[str] = "lanner.core.storage.Write"
    content: str
    extension: str = ".ion"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        data = str(ctx.render(self.content)).encode()
        name = "write" + _extension(str(ctx.render(self.extension)))
        return {"uri": worker_context(ctx).put_data(name, data)}


class Delete(RunnableTask):
    """Deletes an internal-storage file; outputs ``uri`` and ``deleted``."""

    TYPE: ClassVar[str] = "lanner.core.storage.Delete"
    uri: str
    error_on_missing: DynamicBool = Field(default=False, alias="errorOnMissing")

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = str(ctx.render(self.uri))
        deleted = worker_context(ctx).delete_file(uri)
        if not deleted and resolve(self.error_on_missing, ctx.render_typed):
            raise TaskFailed(f"Unable to find file '{uri}'")
        return {"uri": uri, "deleted": deleted}


class Size(RunnableTask):
    """Outputs the ``size`` in bytes of an internal-storage file."""

    TYPE: ClassVar[str] = "lanner.core.storage.Size"
    uri: str

    def run(self, ctx: RunContext) -> dict[str, Any]:
        uri = str(ctx.render(self.uri))
        try:
            return {"size": worker_context(ctx).file_size(uri)}
        except NotFoundError as exc:
            raise TaskFailed(str(exc)) from exc


class Concat(RunnableTask):
    """Concatenates ``files`` (a list of URIs, or a JSON list) into one file; outputs ``uri``."""

    TYPE: ClassVar[str] = "lanner.core.storage.Concat"
    files: list[str] | str
    separator: str | None = None
    extension: str = ".tmp"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        rendered = ctx.render(self.files)
        uris = json.loads(rendered) if isinstance(rendered, str) else rendered
        if not isinstance(uris, list):
            raise TaskFailed("'files' must be a list of internal-storage URIs")
        separator = (str(ctx.render(self.separator)) if self.separator else "").encode()
        data = separator.join(ctx.get_file(str(uri)) for uri in uris)
        name = "concat" + _extension(str(ctx.render(self.extension)))
        return {"uri": worker_context(ctx).put_data(name, data)}


def split_lines(
    text: str, sep: str, rows: int | None, partitions: int | None, size: str | None
) -> list[list[str]]:
    """``text``'s lines (split on ``sep``) in chunks of ``rows`` lines, in ``partitions``
    chunks, or in chunks of at most ``size`` bytes (a line is never cut)."""
    lines = text.split(sep)
    if lines and lines[-1] == "":
        lines.pop()
    if rows:
        return [lines[i : i + rows] for i in range(0, len(lines), rows)]
    if partitions:
        step = -(-len(lines) // partitions) if lines else 1
        return [lines[i : i + step] for i in range(0, len(lines), step)]
    if size is None:
        return [lines] if lines else []
    limit = parse_size(size)
    chunks: list[list[str]] = []
    current: list[str] = []
    used = 0
    for line in lines:
        length = len(line.encode()) + len(sep)
        if current and used + length > limit:
            chunks.append(current)
            current, used = [], 0
        current.append(line)
        used += length
    if current:
        chunks.append(current)
    return chunks


class Split(RunnableTask):
    """Splits a file by ``rows``, ``bytes`` or ``partitions`` (lines kept whole);
    outputs ``uris``."""

    TYPE: ClassVar[str] = "lanner.core.storage.Split"
    from_: str = Field(alias="from")
    rows: DynamicPositive | None = None
    bytes: str | None = None
    partitions: DynamicPositive | None = None
    separator: str = "\n"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        wctx = worker_context(ctx)
        uri = str(ctx.render(self.from_))
        rows: int | None = resolve(self.rows, ctx.render_typed)
        partitions: int | None = resolve(self.partitions, ctx.render_typed)
        size = str(ctx.render(self.bytes)) if self.bytes else None
        if rows is None and partitions is None and size is None:
            raise TaskFailed("Split needs one of 'rows', 'bytes' or 'partitions'")
        sep = self.separator
        chunks = split_lines(ctx.get_file(uri).decode(), sep, rows, partitions, size)
        suffix = uri.rsplit(".", 1)[-1] if "." in uri.rsplit("/", 1)[-1] else "tmp"
        uris = [
            wctx.put_data(f"split-{n}.{suffix}", (sep.join(chunk) + sep).encode())
            for n, chunk in enumerate(chunks)
        ]
        return {"uris": uris}


def _suffix(uri: str) -> str:
    """The extension of ``uri``'s file name, with its dot (``.yml``), or ``""``."""
    name = uri.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


class Reverse(RunnableTask):
    """Writes the lines of ``from`` last first, each followed by ``separator``; outputs ``uri``
    (same extension). Kestra's ``io.kestra.plugin.core.storage.Reverse``."""

    TYPE: ClassVar[str] = "lanner.core.storage.Reverse"
    from_: str = Field(alias="from")
    separator: str = "\n"
    charset: str = "UTF-8"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        wctx = worker_context(ctx)
        uri = str(ctx.render(self.from_))
        separator = str(ctx.render(self.separator))
        encoding = str(ctx.render(self.charset))
        suffix = _suffix(uri)
        source = _rows.local_copy(wctx, uri, suffix)
        target = _rows.temp_output(wctx, suffix)
        with open(target, "w", encoding=encoding, newline="") as out:
            for line in _rows.reversed_lines(source, encoding):
                out.write(line + separator)
        return {"uri": wctx.put_path("reverse" + suffix, target)}


def _item_renderer(ctx: WorkerContext, template: str, what: str) -> Any:
    def render(line: str) -> str:
        try:
            value = _rows.parse_row(line)
        except ValueError as exc:
            raise TaskFailed(f"{what}: the item '{line[:200]}' is not a JSON value") from exc
        return str(ctx.render_with(template, _rows.row_variables(value)))

    return render


class DeduplicateItems(RunnableTask):
    """Keeps, of the items of ``from`` (a row file) with the same key (``expr`` rendered with
    the item's fields), the last one, where it stands. Reads the file twice and holds only the
    keys in memory; outputs ``uri``, ``numKeys``, ``processedItemsTotal``,
    ``droppedItemsTotal``. Kestra's ``io.kestra.plugin.core.storage.DeduplicateItems``."""

    TYPE: ClassVar[str] = "lanner.core.storage.DeduplicateItems"
    from_: str = Field(alias="from")
    expr: str

    def run(self, ctx: RunContext) -> dict[str, Any]:
        wctx = worker_context(ctx)
        key_of = _item_renderer(wctx, self.expr, "DeduplicateItems")
        source = _rows.local_copy(wctx, str(ctx.render(self.from_)))
        last: dict[str, int] = {}
        for offset, line in enumerate(_rows.lines(source)):
            last[key_of(line)] = offset
        processed = dropped = 0
        target = _rows.temp_output(wctx, ".ion")
        with open(target, "w", encoding="utf-8") as out:
            for offset, line in enumerate(_rows.lines(source)):
                if last.get(key_of(line)) == offset:
                    out.write(line + "\n")
                else:
                    dropped += 1
                processed += 1
        return {
            "uri": wctx.put_path("deduplicate.ion", target),
            "numKeys": len(last),
            "processedItemsTotal": processed,
            "droppedItemsTotal": dropped,
        }


_FALSE = ("false", "0", "-0", "")  # Kestra's TruthUtils


class FilterItems(RunnableTask):
    """Keeps (``filterType: INCLUDE``) or drops (``EXCLUDE``) the items of ``from`` for which
    ``filterCondition`` is true; an item whose condition fails to render fails the task
    (``errorOrNullBehavior: FAIL``) or is kept / dropped (``INCLUDE`` / ``EXCLUDE``). Outputs
    ``uri``, ``processedItemsTotal``, ``droppedItemsTotal``. Kestra's
    ``io.kestra.plugin.core.storage.FilterItems``."""

    TYPE: ClassVar[str] = "lanner.core.storage.FilterItems"
    from_: str = Field(alias="from")
    filter_condition: str = Field(alias="filterCondition")
    filter_type: Literal["INCLUDE", "EXCLUDE"] = Field(default="INCLUDE", alias="filterType")
    error_or_null_behavior: Literal["FAIL", "INCLUDE", "EXCLUDE"] = Field(
        default="FAIL", alias="errorOrNullBehavior"
    )

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from common.errors import TemplateError

        wctx = worker_context(ctx)
        condition = _item_renderer(wctx, self.filter_condition, "FilterItems")
        source = _rows.local_copy(wctx, str(ctx.render(self.from_)))
        processed = dropped = 0
        target = _rows.temp_output(wctx, ".ion")
        with open(target, "w", encoding="utf-8") as out:
            for line in _rows.lines(source):
                action = self.filter_type
                try:
                    match = condition(line).strip() not in _FALSE
                except TemplateError as exc:
                    if self.error_or_null_behavior == "FAIL":
                        raise TaskFailed(
                            f"Expression `{self.filter_condition}` failed on item `{line}`: {exc}"
                        ) from exc
                    action, match = self.error_or_null_behavior, True  # type: ignore[assignment]
                if not match:
                    action = "EXCLUDE" if action == "INCLUDE" else "INCLUDE"
                if action == "INCLUDE":
                    out.write(line + "\n")
                else:
                    dropped += 1
                processed += 1
        return {
            "uri": wctx.put_path("filter.ion", target),
            "processedItemsTotal": processed,
            "droppedItemsTotal": dropped,
        }


def _namespace_folder(tenant: str, namespace: str, path: str) -> str:
    """``inbox`` of ``company.team`` in tenant ``main`` -> ``lanner:///main/company/team/inbox/``
    (tenant first, as execution files); a ``lanner:///`` URI must be inside that folder."""
    root = f"lanner:///{tenant}/{namespace.replace('.', '/')}/"
    if path.startswith(("lanner://", "kestra://")):  # Kestra's scheme names the same files
        folder = "lanner:///" + path.split("://", 1)[1].lstrip("/")
        if not folder.startswith(root):
            raise ValueError(f"'{path}' is outside the namespace's internal storage ({root})")
    else:
        folder = root + path.lstrip("/")
    return folder if folder.endswith("/") else folder + "/"


class FileTrigger(PollingTrigger):
    """Starts an execution for the new files of a folder of the namespace's internal storage,
    every ``interval`` (the shape of Kestra's file-system triggers, ``io.kestra.plugin.fs.*.
    Trigger``: ``from``, ``action``, ``moveDirectory``, ``maxFiles``, output ``files``).

    ``from``: a folder relative to the namespace's root in the flow's tenant (``inbox/`` of
    ``company.team`` in ``main`` is ``lanner:///main/company/team/inbox/``) or a ``lanner:///``
    URI inside it: tenants never watch each other's files. Each file fires
    once: ``action: MOVE`` moves it to ``moveDirectory`` (the execution gets the new URI);
    ``DELETE`` deletes it (the execution gets its name and size, not its content); ``NONE``
    (default) leaves it and remembers it (URI and modification date) in a state file,
    ``_lanner/triggers/<flowId>/<triggerId>/seen.json`` of the namespace, so a file rewritten
    later fires again. The file's fate is decided on the worker before the answer reaches the
    scheduler: a worker that dies in between loses those files' execution (at most once).
    The execution gets ``trigger.files``: a list of ``{uri, name, size, lastModified}``,
    oldest first, at most ``maxFiles`` per evaluation.
    """

    TYPE: ClassVar[str] = "lanner.core.storage.FileTrigger"
    from_: str = Field(alias="from")
    action: Literal["NONE", "MOVE", "DELETE"] = "NONE"
    move_directory: str | None = Field(default=None, alias="moveDirectory")
    max_files: int = Field(default=25, alias="maxFiles", ge=1)
    interval: str = "PT60S"
    inputs: dict[str, Any] = Field(default_factory=dict)

    def _state_uri(self, ctx: PollingContext) -> str:
        flow_id = str((ctx.variables.get("flow") or {}).get("id", "flow"))
        root = _namespace_folder(ctx.tenant, ctx.namespace, "")
        return f"{root}_lanner/triggers/{flow_id}/{self.id}/seen.json"

    def evaluate(self, ctx: PollingContext) -> dict[str, Any] | None:
        storage = ctx.storage
        folder = _namespace_folder(ctx.tenant, ctx.namespace, str(ctx.render(self.from_)))
        target = None
        if self.action == "MOVE":
            if not self.move_directory:
                raise ValueError("action MOVE needs `moveDirectory`")
            target = _namespace_folder(
                ctx.tenant, ctx.namespace, str(ctx.render(self.move_directory))
            )
        state_uri = self._state_uri(ctx)
        seen: dict[str, str] = {}
        if self.action == "NONE" and storage.exists(state_uri):
            seen = json.loads(storage.get(state_uri))
        found = []
        for uri in storage.list(folder):
            if target is not None and uri.startswith(target):
                continue
            if uri == state_uri:
                continue
            try:
                stat = storage.stat(uri)
            except NotFoundError:
                continue  # deleted meanwhile
            modified = stat.last_modified.isoformat()
            if seen.get(uri) == modified:
                continue
            found.append((modified, uri, stat.size))
        if not found:
            return None
        found.sort()
        files = []
        for modified, uri, size in found[: self.max_files]:
            name = uri.rsplit("/", 1)[-1]
            final = uri
            if target is not None:
                final = target + uri[len(folder) :]
                storage.put(final, storage.get(uri))
                storage.delete(uri)
            elif self.action == "DELETE":
                storage.delete(uri)
            else:
                seen[uri] = modified
            files.append({"uri": final, "name": name, "size": size, "lastModified": modified})
        if self.action == "NONE":
            existing = set(storage.list(folder))
            kept = {uri: date for uri, date in seen.items() if uri in existing}
            storage.put(state_uri, json.dumps(kept, sort_keys=True).encode())
        ctx.log("INFO", f"{len(files)} new file(s) in {folder}")
        return {"files": files}


PLUGINS: list[type] = [
    Write,
    Delete,
    Size,
    Concat,
    Split,
    Reverse,
    DeduplicateItems,
    FilterItems,
    FileTrigger,
]
