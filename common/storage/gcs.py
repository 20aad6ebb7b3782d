"""Internal storage on Google Cloud Storage (``LANNER_STORAGE=gcs``).

Objects live in ``LANNER_GCS_BUCKET`` under ``LANNER_GCS_PREFIX``, named after the URI's path:
``lanner:///company/team/f/executions/e1/a.txt`` is ``<prefix>/company/team/f/executions/e1/
a.txt``. Credentials come the usual Google way (Application Default Credentials); with
``STORAGE_EMULATOR_HOST`` set, the client talks to that emulator anonymously.

Files go both ways in chunks: an upload is a resumable upload read from the stream, a download
ranged reads of one object generation, so a file never has to fit in memory. GCS has no
folders, so the local storage's rules are checked here: a file cannot be written where a file
is a parent folder of it, nor over a folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from google.api_core import exceptions as gexc
from google.cloud import storage as gcs

from common.errors import NotFoundError, StorageError

from .base import CHUNK_SIZE, SCHEME, FileStat, guess_content_type, object_key

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_UPLOAD_CHUNK = 4 * 256 * 1024  # a multiple of 256 KiB, as resumable uploads require


def gcs_client(project: str | None = None) -> gcs.Client:
    if os.environ.get(EMULATOR_ENV):
        from google.auth.credentials import AnonymousCredentials

        return gcs.Client(project=project or "lanner", credentials=AnonymousCredentials())
    return gcs.Client(project=project)


class GcsStorage:
    def __init__(self, bucket: str, prefix: str = "", *, client: gcs.Client | None = None):
        if not bucket:
            raise StorageError("LANNER_GCS_BUCKET is empty: name the bucket internal storage uses")
        self.client = client or gcs_client()
        self.bucket = self.client.bucket(bucket)
        cleaned = prefix.strip("/")
        self.prefix = f"{cleaned}/" if cleaned else ""

    # ---------------------------------------------------------------- names
    def _name(self, uri: str) -> str:
        return self.prefix + object_key(uri)

    def _uri(self, name: str) -> str:
        return f"{SCHEME}/{name[len(self.prefix) :]}"

    def _folder(self, uri: str) -> str:
        name = self._name(uri)
        return name if not name or name.endswith("/") else name + "/"

    @staticmethod
    def _missing(uri: str) -> NotFoundError:
        return NotFoundError(f"file '{uri}' not found in internal storage")

    def _blob(self, uri: str) -> Any:
        """The object at ``uri``, or None (a folder is not an object)."""
        name = self._name(uri)
        if not name or name.endswith("/"):
            return None
        with _errors(f"reading '{uri}'"):
            return self.bucket.get_blob(name)

    # ---------------------------------------------------------------- Storage
    def put(self, uri: str, data: bytes | BinaryIO, content_type: str | None = None) -> str:
        name = self._name(uri)
        if not object_key(uri) or name.endswith("/"):
            raise StorageError(f"cannot write '{uri}': it names a folder, not a file")
        with _errors(f"writing '{uri}'"):
            parts = name[len(self.prefix) :].split("/")
            for depth in range(1, len(parts)):
                parent = self.prefix + "/".join(parts[:depth])
                if self.bucket.get_blob(parent) is not None:
                    raise StorageError(f"cannot write '{uri}': {self._uri(parent)} is a file")
            if next(
                iter(self.client.list_blobs(self.bucket, prefix=name + "/", max_results=1)), None
            ):
                raise StorageError(f"cannot write '{uri}': it is a folder")
            blob = self.bucket.blob(name)
            kind = content_type or guess_content_type(uri)
            if isinstance(data, bytes | bytearray | memoryview):
                blob.upload_from_string(bytes(data), content_type=kind)
            else:
                # a resumable upload fed chunk by chunk: the stream need not be seekable, and
                # the object appears only once the last chunk is in
                with blob.open("wb", chunk_size=_UPLOAD_CHUNK, content_type=kind) as out:
                    shutil.copyfileobj(data, out, CHUNK_SIZE)
        return uri

    def get(self, uri: str) -> bytes:
        blob = self._blob(uri)
        if blob is None:
            raise self._missing(uri)
        with _errors(f"reading '{uri}'"):
            try:
                return bytes(blob.download_as_bytes())  # the generation get_blob saw
            except gexc.NotFound:
                raise self._missing(uri) from None

    def stream(self, uri: str) -> Iterator[bytes]:
        blob = self._blob(uri)
        if blob is None:
            raise self._missing(uri)
        return self._chunks(uri, blob)

    def _chunks(self, uri: str, blob: Any) -> Iterator[bytes]:
        with _errors(f"reading '{uri}'"):
            # ranged reads of the generation get_blob saw: a file replaced meanwhile is not
            # mixed in
            reader = blob.open("rb", chunk_size=CHUNK_SIZE)
            with reader:
                while chunk := reader.read(CHUNK_SIZE):
                    yield chunk

    def size(self, uri: str) -> int:
        return self.stat(uri).size

    def stat(self, uri: str) -> FileStat:
        blob = self._blob(uri)
        if blob is None:
            raise self._missing(uri)
        return FileStat(
            int(blob.size or 0), blob.content_type or guess_content_type(uri), blob.updated
        )

    def exists(self, uri: str) -> bool:
        return self._blob(uri) is not None

    def delete(self, uri: str) -> bool:
        name = self._name(uri)
        if not name or name.endswith("/"):
            return False
        with _errors(f"deleting '{uri}'"):
            try:
                self.bucket.blob(name).delete()
                return True
            except gexc.NotFound:
                return False

    def list(self, prefix: str) -> list[str]:
        folder = self._folder(prefix)
        with _errors(f"listing '{prefix}'"):
            names = [b.name for b in self.client.list_blobs(self.bucket, prefix=folder)]
        return sorted(self._uri(n) for n in names)

    def delete_prefix(self, prefix: str) -> int:
        if not object_key(prefix).strip("/"):
            raise StorageError(f"'{prefix}' is the whole storage: name a folder inside it")
        return sum(self.delete(uri) for uri in self.list(prefix))


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """Google API and connection errors become ``StorageError`` naming what was being done."""
    try:
        yield
    except gexc.NotFound:
        raise
    except (gexc.GoogleAPIError, OSError) as exc:
        raise StorageError(f"Google Cloud Storage: {what} failed: {exc}") from exc
