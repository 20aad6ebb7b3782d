"""Internal storage on a local directory."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from common.errors import NotFoundError, StorageError, StorageUriError

from .base import CHUNK_SIZE, SCHEME, FileStat, guess_content_type, object_key

# A file being written is a uniquely named sibling of its target until it is renamed into place:
# never a name a user's file could have (the prefix is refused in URIs), never listed.
_PARTIAL = ".lanner-partial-"


class LocalStorage:
    def __init__(self, base_dir: str | Path) -> None:
        self.base = Path(base_dir).resolve()
        self.base.mkdir(parents=True, exist_ok=True)

    def _path(self, uri: str) -> Path:
        relative = object_key(uri)
        if any(part.startswith(_PARTIAL) for part in relative.split("/")):
            raise StorageUriError(f"'{uri}': names starting with {_PARTIAL} are reserved")
        path = (self.base / relative).resolve()
        if self.base not in path.parents and path != self.base:
            raise StorageUriError(f"'{uri}' points outside the internal storage")
        return path

    def _missing(self, uri: str) -> NotFoundError:
        return NotFoundError(f"file '{uri}' not found in internal storage")

    def put(self, uri: str, data: bytes | BinaryIO, content_type: str | None = None) -> str:
        # a directory keeps no content type: stat guesses it from the name
        path = self._path(uri)
        if path == self.base or uri.endswith("/"):
            raise StorageError(f"cannot write '{uri}': it names a folder, not a file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_PARTIAL, dir=path.parent)
        except OSError as exc:  # a part of the path is a file, or no permission
            raise StorageError(f"cannot write '{uri}': {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out, CHUNK_SIZE)
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StorageError(f"cannot write '{uri}': {exc.strerror}") from exc
            raise
        return uri

    def get(self, uri: str) -> bytes:
        path = self._path(uri)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(uri) from None

    def stream(self, uri: str) -> Iterator[bytes]:
        path = self._path(uri)
        try:
            handle = open(path, "rb")  # closed by _chunks, when read to the end or dropped
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._missing(uri) from None
        return self._chunks(handle)

    @staticmethod
    def _chunks(handle: BinaryIO) -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK_SIZE):
                yield chunk

    def size(self, uri: str) -> int:
        path = self._path(uri)
        try:
            found = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(uri) from None
        if not stat.S_ISREG(found.st_mode):
            raise self._missing(uri)
        return found.st_size

    def stat(self, uri: str) -> FileStat:
        path = self._path(uri)
        try:
            found = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(uri) from None
        if not stat.S_ISREG(found.st_mode):
            raise self._missing(uri)
        modified = datetime.fromtimestamp(found.st_mtime, UTC)
        return FileStat(found.st_size, guess_content_type(uri), modified)

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def delete(self, uri: str) -> bool:
        path = self._path(uri)
        try:
            path.unlink()
            return True
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False

    def delete_prefix(self, prefix: str) -> int:
        root = self._path(prefix)
        if root == self.base:
            raise StorageError(f"'{prefix}' is the whole storage: name a folder inside it")
        deleted = 0
        for uri in self.list(prefix):
            deleted += self.delete(uri)
        if root.is_dir():
            shutil.rmtree(root, ignore_errors=True)  # the emptied folders
        return deleted

    def list(self, prefix: str) -> list[str]:
        root = self._path(prefix)
        if not root.is_dir():
            return []
        return sorted(
            f"{SCHEME}/{p.relative_to(self.base).as_posix()}"
            for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(_PARTIAL)
        )
