"""The key-value store of a namespace, kept in internal storage (Kestra's ``InternalKVStore``).

Each entry is one file, ``lanner:///<tenant>/<namespace as folders>/_kv/<key>.json``: Kestra's
layout (``StorageContext.kvPrefix``) with the tenant first, as Kestra's storages do. The file
holds the typed value and its metadata, so every backend (local folder, GCS) and every component
(workers, webserver) shares the store without a topic or a table:

    {"type": "NUMBER", "value": 1.5, "creationDate": "...Z", "updateDate": "...Z",
     "expirationDate": "...Z" | null}

Types are Kestra's ``KVType``: STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION, JSON. Dates,
datetimes and durations are kept as ISO-8601 text (``2023-05-02T01:02:03Z``, ``P1DT5S``), the
text Kestra prints for them. An expired entry reads as missing (``get_value`` returns
``EXPIRED``, callers that are not the API treat it as absent) and is deleted on that read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from common.errors import InputValidationError, NotFoundError, Problem

from .base import SCHEME, Storage

KV_TYPES: Final = ("STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON")
KEY_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
KEY_MESSAGE = (
    "Key must start with an alphanumeric character (uppercase or lowercase) and can contain "
    "alphanumeric characters (uppercase or lowercase), dots (.), underscores (_), and hyphens (-) "
    "only."
)
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Kestra's InternalKVStore.DURATION_PATTERN: a string value of this shape reads as a DURATION
DURATION_PATTERN = re.compile(r"^P(?=[^T]|T.)(?:\d*D)?(?:T(?=.)(?:\d*H)?(?:\d*M)?(?:\d*S)?)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
_SUFFIX = ".json"


class _Expired:
    def __repr__(self) -> str:
        return "EXPIRED"


EXPIRED: Final = _Expired()
MISSING: Final = object()


def validate_key(key: str, field: str = "key") -> str:
    """``key`` if it matches Kestra's ``KVStore.KEY_VALIDATOR_PATTERN``, else a 422 naming it."""
    if not key:
        raise InputValidationError([Problem(field, "Key cannot be null or empty")])
    if not KEY_PATTERN.match(key):
        raise InputValidationError([Problem(field, KEY_MESSAGE)])
    return key


def validate_namespace(namespace: str, field: str = "namespace") -> str:
    if not NAMESPACE_PATTERN.match(namespace or "") or len(namespace) > 150:
        raise InputValidationError(
            [Problem(field, f"'{namespace}' is not a namespace (pattern {NAMESPACE_PATTERN})")]
        )
    return namespace


def namespace_root(tenant: str, namespace: str) -> str:
    """``lanner:///<tenant>/<namespace as folders>/`` (validated: no traversal)."""
    validate_namespace(namespace)
    if not KEY_PATTERN.match(tenant or ""):
        raise InputValidationError([Problem("tenant", f"'{tenant}' is not a tenant id")])
    return f"{SCHEME}/{tenant}/{namespace.replace('.', '/')}/"


def _iso(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z").replace(".000Z", "Z")


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_duration(value: timedelta) -> str:
    """ISO-8601 text of a duration, as Java's ``Duration.toString`` (``PT24H5S``, ``PT0.5S``)."""
    total = value.total_seconds()
    if total < 0:
        return "PT-" + format_duration(-value)[2:]
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{int(hours)}H"
    if minutes:
        text += f"{int(minutes)}M"
    if seconds or text == "PT":
        text += f"{int(seconds)}S" if seconds == int(seconds) else f"{seconds:g}S"
    return text


def type_of(value: Any) -> str:
    """Kestra's ``KVType.from``: the type of a value that was not given one."""
    if value is None or isinstance(value, str):
        if isinstance(value, str) and DURATION_PATTERN.match(value):
            return "DURATION"
        return "STRING"
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, datetime):
        return "DATETIME"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, timedelta):
        return "DURATION"
    return "JSON"


def _to_stored(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    return value


def convert(value: Any, kv_type: str) -> Any:
    """``value`` (rendered) as ``kv_type``, as Kestra's ``kv.Set`` converts a string with
    ``kvType``; raises ``ValueError`` with a message for a value that is not of that type."""
    if kv_type not in KV_TYPES:
        raise ValueError(f"kvType must be one of {', '.join(KV_TYPES)}, not '{kv_type}'")
    if not isinstance(value, str):
        return value
    if kv_type == "NUMBER":
        try:
            number = json.loads(value)
        except json.JSONDecodeError:
            number = None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(f"'{value}' is not a NUMBER")
        return number
    if kv_type == "BOOLEAN":
        return value.strip().lower() == "true"  # Java's Boolean.parseBoolean
    if kv_type in ("DATETIME", "DATE"):
        text = value.strip()
        if kv_type == "DATE" and _DATE.match(text):
            return date.fromisoformat(text)
        if not _DATETIME.match(text):
            raise ValueError(f"'{value}' is not an ISO-8601 instant (2023-05-02T01:02:03Z)")
        moment = _parse_iso(text)
        assert moment is not None
        return moment if kv_type == "DATETIME" else moment.date()
    if kv_type == "DURATION":
        from common.flow.durations import parse_iso_duration

        try:
            return parse_iso_duration(value.strip())
        except (ValueError, TypeError) as exc:
            raise ValueError(f"'{value}' is not an ISO-8601 duration (PT5M)") from exc
    if kv_type == "JSON":
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"'{value}' is not JSON: {exc.msg}") from exc
    return value


def parse_body(text: str) -> Any:
    """A value sent as text (``PUT .../kv/{key}``), typed as Kestra's Ion reader types it:
    JSON values, ``2021-09-01`` (DATE), ``2021-09-01T01:02:03Z`` (DATETIME), a bare word (a
    symbol: STRING). ``ValueError`` for anything else."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    if _DATE.match(stripped):
        return date.fromisoformat(stripped)
    if _DATETIME.match(stripped):
        return _parse_iso(stripped)
    if re.match(r"^[A-Za-z_$][A-Za-z0-9_$]*$", stripped):
        return stripped
    raise ValueError(f"Invalid JSON value for: {text}")


@dataclass(frozen=True)
class KVEntry:
    """Kestra's ``KVEntry``: a key and its dates (an expired key is never listed)."""

    key: str
    creation_date: datetime
    update_date: datetime
    expiration_date: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "creationDate": _iso(self.creation_date),
            "updateDate": _iso(self.update_date),
            "expirationDate": _iso(self.expiration_date) if self.expiration_date else None,
        }


@dataclass(frozen=True)
class TypedValue:
    type: str
    value: Any


class KVStore:
    """The KV store of one namespace of one tenant. ``now`` is injectable for tests of TTLs."""

    def __init__(
        self,
        storage: Storage,
        tenant: str,
        namespace: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.storage = storage
        self.namespace = namespace
        self.prefix = namespace_root(tenant, namespace) + "_kv/"
        self._now = now

    def _uri(self, key: str) -> str:
        return self.prefix + validate_key(key) + _SUFFIX

    def _read(self, uri: str) -> dict[str, Any] | None:
        try:
            record = json.loads(self.storage.get(uri))
        except NotFoundError:
            return None
        except ValueError:  # not written by this store: shown as a text value, never a 500
            return {"type": "STRING", "value": self.storage.get(uri).decode(errors="replace")}
        return record if isinstance(record, dict) and "value" in record else None

    def _expired(self, record: dict[str, Any]) -> bool:
        expiration = _parse_iso(record.get("expirationDate"))
        return expiration is not None and self._now() >= expiration

    def put(
        self,
        key: str,
        value: Any,
        *,
        kv_type: str | None = None,
        ttl: timedelta | None = None,
        overwrite: bool = True,
    ) -> None:
        """Stores ``value``; ``kv_type`` None: the type of the value (``type_of``). With
        ``overwrite`` False an existing (unexpired) key is a ``KVConflict``."""
        uri = self._uri(key)
        if ttl is not None and ttl < timedelta(0):
            raise ValueError("ttl cannot be negative")
        now = self._now()
        previous = self._read(uri)
        if previous is not None and self._expired(previous):
            previous = None
        if previous is not None and not overwrite:
            raise KVConflict(
                f"Cannot set value for key '{key}'. Key already exists and `overwrite` is set "
                "to `false`."
            )
        record = {
            "type": kv_type or type_of(value),
            "value": _to_stored(value),
            "creationDate": (previous or {}).get("creationDate") or _iso(now),
            "updateDate": _iso(now),
            "expirationDate": _iso(now + ttl) if ttl is not None else None,
        }
        self.storage.put(uri, json.dumps(record).encode(), "application/json")

    def get_value(self, key: str) -> TypedValue | None | _Expired:
        """The typed value; None for a missing key; ``EXPIRED`` (once: the entry is deleted)
        for an expired one."""
        uri = self._uri(key)
        record = self._read(uri)
        if record is None:
            return None
        if self._expired(record):
            self.storage.delete(uri)
            return EXPIRED
        return TypedValue(str(record.get("type") or type_of(record.get("value"))), record["value"])

    def value(self, key: str, default: Any = None) -> Any:
        """The value, ``default`` when missing or expired (how tasks and ``kv()`` read)."""
        found = self.get_value(key)
        return found.value if isinstance(found, TypedValue) else default

    def delete(self, key: str) -> bool:
        return self.storage.delete(self._uri(key))

    def list(self) -> list[KVEntry]:
        """Every unexpired entry, sorted by key."""
        entries: list[KVEntry] = []
        for uri in self.storage.list(self.prefix):
            name = uri[len(self.prefix) :]
            if "/" in name or not name.endswith(_SUFFIX):
                continue
            record = self._read(uri)
            if record is None or self._expired(record):
                continue
            created = _parse_iso(record.get("creationDate")) or self._now()
            entries.append(
                KVEntry(
                    key=name[: -len(_SUFFIX)],
                    creation_date=created,
                    update_date=_parse_iso(record.get("updateDate")) or created,
                    expiration_date=_parse_iso(record.get("expirationDate")),
                )
            )
        return sorted(entries, key=lambda e: e.key)


class KVConflict(Exception):
    """``overwrite: false`` and the key exists."""


__all__ = [
    "EXPIRED",
    "KEY_MESSAGE",
    "KVConflict",
    "KVEntry",
    "KVStore",
    "KV_TYPES",
    "TypedValue",
    "convert",
    "namespace_root",
    "parse_body",
    "type_of",
    "validate_key",
    "validate_namespace",
]
