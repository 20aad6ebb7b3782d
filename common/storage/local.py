"""Internal storage on a local directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from common.errors import NotFoundError, StorageError

from .base import CHUNK_SIZE, SCHEME


class LocalStorage:
    def __init__(self, base_dir: str | Path) -> None:
        self.base = Path(base_dir).resolve()
        self.base.mkdir(parents=True, exist_ok=True)

    def _path(self, uri: str) -> Path:
        if not uri.startswith(SCHEME):
            raise StorageError(
                f"'{uri}' is not an internal storage URI (it must start with {SCHEME})"
            )
        path = (self.base / uri[len(SCHEME) :].lstrip("/")).resolve()
        if self.base not in path.parents and path != self.base:
            raise StorageError(f"'{uri}' points outside the internal storage")
        return path

    def put(self, uri: str, data: bytes | BinaryIO) -> str:
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                shutil.copyfileobj(data, out, CHUNK_SIZE)
        os.replace(tmp, path)
        return uri

    def get(self, uri: str) -> bytes:
        path = self._path(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"file '{uri}' not found in internal storage") from None

    def stream(self, uri: str) -> Iterator[bytes]:
        path = self._path(uri)
        try:
            handle = open(path, "rb")  # closed by _chunks, when read to the end or dropped
        except FileNotFoundError:
            raise NotFoundError(f"file '{uri}' not found in internal storage") from None
        return self._chunks(handle)

    @staticmethod
    def _chunks(handle: BinaryIO) -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK_SIZE):
                yield chunk

    def size(self, uri: str) -> int:
        path = self._path(uri)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"file '{uri}' not found in internal storage") from None

    def exists(self, uri: str) -> bool:
        return self._path(uri).is_file()

    def delete(self, uri: str) -> bool:
        path = self._path(uri)
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False

    def list(self, prefix: str) -> list[str]:
        root = self._path(prefix)
        if not root.exists():
            return []
        return sorted(
            SCHEME + str(p.relative_to(self.base)) for p in root.rglob("*") if p.is_file()
        )
