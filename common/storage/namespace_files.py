"""Namespace files, kept in internal storage (Kestra's ``InternalNamespace``).

A namespace's files live under ``lanner:///<tenant>/<namespace as folders>/_files/`` (Kestra's
``StorageContext.namespaceFilePrefix`` with the tenant first). Paths are absolute inside the
namespace (``/scripts/etl.py``). Object stores have no folders, so a folder exists when a file is
under it, or when it was created empty: it then holds a marker file (``.lanner-folder``) that no
listing shows. Paths with ``..``, backslashes, NUL bytes or the marker's name are refused with a
422 naming the field; ``/_flows`` is Kestra's forbidden folder (flows are not files).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal
from urllib.parse import unquote

from common import bounded
from common.errors import (
    ConflictError,
    InputValidationError,
    NotFoundError,
    Problem,
    StorageUriError,
)

from .base import SCHEME, Storage, with_scheme
from .kv import namespace_root

FOLDER_MARKER = ".lanner-folder"
FORBIDDEN = re.compile(r"^/_flows(/.*)?$")
Conflict = Literal["OVERWRITE", "ERROR", "SKIP"]


def normalize(path: str | None, field: str = "path") -> str:
    """``path`` as ``/a/b`` (``/`` for the root); a 422 naming ``field`` for traversal."""
    text = (path or "").strip()
    decoded = unquote(text)  # storage keys are read percent-decoded: refuse both spellings
    if "\\" in decoded or "\x00" in decoded:
        raise InputValidationError([Problem(field, f"'{path}': backslashes and NUL bytes")])
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts or ".." in decoded.split("/"):
        raise InputValidationError([Problem(field, f"'{path}' points outside the namespace")])
    if FOLDER_MARKER in parts or any(p.startswith(".lanner-partial-") for p in parts):
        raise InputValidationError([Problem(field, f"'{path}': reserved name")])
    return "/" + "/".join(parts)


def file_uri(tenant: str, namespace: str, path: str, scheme: str = SCHEME) -> str:
    """The URI of a namespace file (Kestra's ``fileURI(path)``), written with ``scheme``:
    ``<scheme>:///<tenant>/<namespace as folders>/_files/<path>`` — Kestra's
    ``/<namespace as folders>/_files/<path>`` with the tenant first, as the files are stored.
    ``StorageUriError`` "Path must not contain '../'" (Kestra's message) for a path with ``../``;
    a 422 for the other paths ``normalize`` refuses."""
    if "../" in path or path.strip() == "..":
        raise StorageUriError("Path must not contain '../'")
    uri = namespace_root(tenant, namespace) + "_files" + normalize(path)
    return with_scheme(uri, scheme)


def guard(path: str, field: str = "path") -> str:
    """``normalize`` and refuse Kestra's forbidden ``/_flows`` folder."""
    normalized = normalize(path, field)
    if FORBIDDEN.match(normalized):
        raise InputValidationError([Problem(field, f"Forbidden path: {normalized}")])
    return normalized


def _glob_regex(pattern: str) -> str:
    """Java's ``FileSystem.getPathMatcher("glob:...")`` syntax as a Python regex."""
    out: list[str] = []
    i = 0
    in_group = False
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "{":
            out.append("(?:")
            in_group = True
        elif char == "}" and in_group:
            out.append(")")
            in_group = False
        elif char == "," and in_group:
            out.append("|")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def path_matcher(patterns: Iterable[str]) -> PathMatcher:
    """Kestra's ``PathMatcherPredicate.matches(patterns)``: ``glob:``/``regex:`` prefixes;
    a bare pattern that starts with a word character matches at any depth (``**/`` added)."""
    regexes: list[str] = []
    for pattern in patterns:
        if pattern.startswith("regex:"):
            regexes.append(pattern[len("regex:") :])
            continue
        if pattern.startswith("glob:"):
            pattern = pattern[len("glob:") :]
        elif re.match(r"^\w", pattern):
            pattern = "**/" + pattern
        regexes.append(_glob_regex(pattern))
    if not regexes:
        return PathMatcher(r"[^\x00-\x{10FFFF}]")  # matches nothing (RE2 has no (?!))
    return PathMatcher("|".join(f"(?:{r})" for r in regexes))


class PathMatcher:
    """``fullmatch(path)`` of user patterns: RE2, or a helper process with a deadline for a
    pattern only a backtracking engine runs (``common.bounded``): a ``regex:`` pattern such as
    ``(a+)+$`` cannot hang a worker thread. ``re.error`` at construction for a bad pattern."""

    def __init__(self, pattern: str) -> None:
        bounded.check(pattern)
        self.pattern = pattern

    def fullmatch(self, path: str) -> bool | None:
        try:
            return True if bounded.fullmatch(self.pattern, path) else None
        except bounded.LimitExceeded as exc:
            raise ValueError(f"path pattern '{self.pattern}': {exc}") from None


@dataclass(frozen=True)
class FileAttributes:
    """Kestra's ``FileAttributes`` (``/namespaces/{ns}/files/stats`` and ``/directory``)."""

    file_name: str
    type: Literal["File", "Directory"]
    size: int
    last_modified: datetime
    creation: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "fileName": self.file_name,
            "lastModifiedTime": int(self.last_modified.timestamp() * 1000),
            "creationTime": int(self.creation.timestamp() * 1000),
            "type": self.type,
            "size": self.size,
            "metadata": {},
        }


class NamespaceFiles:
    """The files of one namespace of one tenant."""

    def __init__(self, storage: Storage, tenant: str, namespace: str) -> None:
        self.storage = storage
        self.namespace = namespace
        self.prefix = namespace_root(tenant, namespace) + "_files"

    def uri(self, path: str) -> str:
        normalized = normalize(path)
        return self.prefix + ("" if normalized == "/" else normalized)

    def _all_uris(self, folder: str = "/") -> list[str]:
        base = self.uri(folder)
        return self.storage.list(base.rstrip("/") + "/")

    def _path_of(self, uri: str) -> str:
        return uri[len(self.prefix) :]

    def all(self, folder: str = "/") -> list[str]:
        """Paths of every file under ``folder`` (``/a/b.txt``), sorted, folders' markers left
        out."""
        return [
            self._path_of(uri)
            for uri in self._all_uris(folder)
            if posixpath.basename(uri) != FOLDER_MARKER
        ]

    def matching(self, patterns: Iterable[str]) -> list[str]:
        matcher = path_matcher(patterns)
        return [path for path in self.all() if matcher.fullmatch(path)]

    def exists(self, path: str) -> bool:
        return self.storage.exists(self.uri(path))

    def is_directory(self, path: str) -> bool:
        normalized = normalize(path)
        return normalized == "/" or bool(self._all_uris(normalized))

    def get(self, path: str) -> bytes:
        return self.storage.get(self.uri(path))

    def stream(self, path: str) -> Iterator[bytes]:
        return self.storage.stream(self.uri(path))

    def put(
        self, path: str, data: bytes | BinaryIO, conflict: Conflict = "OVERWRITE"
    ) -> str | None:
        """Stores a file; returns its path, or None when it existed and ``conflict`` is SKIP.
        ``ERROR`` and an existing file: ``ConflictError`` with Kestra's message."""
        normalized = normalize(path)
        if normalized == "/":
            raise InputValidationError([Problem("path", "a file needs a name")])
        uri = self.uri(normalized)
        if conflict != "OVERWRITE" and self.storage.exists(uri):
            if conflict == "ERROR":
                raise ConflictError(
                    f"File '{normalized}' already exists in namespace '{self.namespace}' and "
                    "conflict is set to ERROR"
                )
            return None
        self.storage.put(uri, data)
        self._drop_markers_above(normalized)
        return normalized

    def _drop_markers_above(self, path: str) -> None:
        folder = posixpath.dirname(path)
        while folder != "/":
            self.storage.delete(self.uri(folder) + "/" + FOLDER_MARKER)
            folder = posixpath.dirname(folder)

    def create_directory(self, path: str) -> None:
        normalized = normalize(path)
        if normalized != "/" and not self.is_directory(normalized):
            if self.storage.exists(self.uri(normalized)):
                raise ConflictError(f"'{normalized}' is a file")
            self.storage.put(self.uri(normalized) + "/" + FOLDER_MARKER, b"")

    def stat(self, path: str) -> FileAttributes:
        normalized = normalize(path)
        uri = self.uri(normalized)
        if normalized != "/" and self.storage.exists(uri):
            found = self.storage.stat(uri)
            name = posixpath.basename(normalized)
            stamp = found.last_modified
            return FileAttributes(name, "File", found.size, stamp, stamp)
        uris = self._all_uris(normalized)
        if not uris and normalized != "/":
            raise NotFoundError(f"'{normalized}' not found in namespace '{self.namespace}'")
        stamps = [self.storage.stat(u).last_modified for u in uris[:50]]
        newest = max(stamps) if stamps else datetime.now(UTC)
        oldest = min(stamps) if stamps else newest
        name = posixpath.basename(normalized) or "_files"
        return FileAttributes(name, "Directory", 0, newest, oldest)

    def list_directory(self, path: str) -> list[FileAttributes]:
        """The direct children of the folder ``path``: files and folders."""
        normalized = normalize(path)
        base = "" if normalized == "/" else normalized
        if normalized != "/" and self.storage.exists(self.uri(normalized)):
            raise InputValidationError([Problem("path", f"'{normalized}' is a file")])
        children: dict[str, FileAttributes] = {}
        for uri in self._all_uris(normalized):
            rest = self._path_of(uri)[len(base) + 1 :]
            head, _, tail = rest.partition("/")
            if not tail:
                if head == FOLDER_MARKER:
                    continue
                found = self.storage.stat(uri)
                children[head] = FileAttributes(
                    head, "File", found.size, found.last_modified, found.last_modified
                )
            elif head not in children:
                children[head] = self.stat(f"{base}/{head}")
        return [children[name] for name in sorted(children)]

    def move(self, source: str, target: str) -> None:
        """Moves a file or a folder (every file under it)."""
        src, dst = normalize(source, "from"), normalize(target, "to")
        if src == "/" or dst == "/":
            raise InputValidationError([Problem("from", "the root folder cannot be moved")])
        if self.storage.exists(self.uri(src)):
            pairs = [(self.uri(src), self.uri(dst))]
        else:
            uris = self._all_uris(src)
            if not uris:
                raise NotFoundError(f"'{src}' not found in namespace '{self.namespace}'")
            if dst.startswith(src + "/"):
                raise InputValidationError([Problem("to", "cannot move a folder into itself")])
            pairs = [(u, self.uri(dst) + self._path_of(u)[len(src) :]) for u in uris]
        for old, new in pairs:
            with_content = self.storage.get(old)
            self.storage.put(new, with_content)
        for old, _ in pairs:
            self.storage.delete(old)
        self._drop_markers_above(dst)

    def delete(self, path: str) -> bool:
        """Deletes a file or a folder; False when there was nothing. Parent folders left empty
        disappear, as in Kestra's controller (which deletes them in cascade)."""
        normalized = normalize(path)
        if normalized == "/":
            raise InputValidationError([Problem("path", "the root folder cannot be deleted")])
        deleted = self.storage.delete(self.uri(normalized))
        if not deleted:
            deleted = self.storage.delete_prefix(self.uri(normalized) + "/") > 0
        return deleted


__all__ = [
    "FOLDER_MARKER",
    "FileAttributes",
    "NamespaceFiles",
    "guard",
    "normalize",
    "path_matcher",
]
