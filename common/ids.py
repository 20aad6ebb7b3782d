"""Identifiers: Kestra-style short random ids, and deterministic ones where replays need them."""

from __future__ import annotations

import hashlib
import uuid

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(number: int) -> str:
    out = []
    while number:
        number, rem = divmod(number, 62)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out)) or "0"


def new_id() -> str:
    """A random 22-character base62 id, like Kestra's ``IdUtils.create()``."""
    return _base62(uuid.uuid4().int).rjust(22, "0")


def derived_id(*parts: str) -> str:
    """A deterministic id from its parts: the same inputs always give the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:16]
    return _base62(int.from_bytes(digest, "big")).rjust(22, "0")
