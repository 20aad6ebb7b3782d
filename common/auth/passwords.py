"""Password hashes: argon2id (argon2-cffi), verified in constant time.

Verifying argon2 costs tens of milliseconds of CPU by design; Basic auth sends the password on
every request, so a successful verification is remembered in memory for the process (keyed by
an HMAC of the credentials under a random per-process key, bound to the stored hash): a client
polling the API costs one argon2 verification, not one per call. A wrong password is verified
every time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
_PROCESS_KEY = secrets.token_bytes(32)
_CACHE_LIMIT = 4096
_verified: dict[bytes, str] = {}
_lock = threading.Lock()


def hash_password(plain: str) -> str:
    return _HASHER.hash(plain)


def is_hash(value: str) -> bool:
    return value.startswith("$argon2")


def verify_password(stored_hash: str, plain: str, username: str = "") -> bool:
    """True when ``plain`` matches ``stored_hash`` (an argon2 hash)."""
    key = hmac.new(_PROCESS_KEY, f"{username}\0{plain}".encode(), hashlib.sha256).digest()
    with _lock:
        remembered = _verified.get(key)
    if remembered is not None and hmac.compare_digest(remembered, stored_hash):
        return True
    try:
        _HASHER.verify(stored_hash, plain)
    except (VerificationError, InvalidHashError):
        return False
    with _lock:
        if len(_verified) >= _CACHE_LIMIT:
            _verified.clear()
        _verified[key] = stored_hash
    return True
