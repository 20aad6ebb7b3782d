"""API tokens and UI sessions: JWTs signed with HS256 under ``auth.token_secret`` (PyJWT).

An API token's claims: ``jti`` (its id in the token store), ``sub`` (its name), ``tenant``,
``role``, ``iat``, ``exp`` and ``typ: "api"``. A token is accepted when its signature and expiry
check out **and** the store knows its id and has not revoked it: a leaked secret alone cannot
mint a working token, and a revocation takes effect on the next request.

A UI session (``typ: "session"``, ``sub``: the user) lives in an HttpOnly cookie; its role and
tenants are read from the configuration at every request, so a user removed from it is out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

ALGORITHM = "HS256"
API = "api"
SESSION = "session"


class InvalidToken(Exception):
    """Bad signature, expired, malformed or of the wrong kind."""


@dataclass(frozen=True)
class TokenRecord:
    """What the store keeps of a token (never the token itself)."""

    id: str
    name: str
    tenant: str
    role: str
    created: datetime
    expires: datetime
    revoked: bool = False
    # "api" (an API token) or "session" (a UI session: revoked at logout; tenant empty)
    kind: str = "api"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant,
            "role": self.role,
            "created": self.created.isoformat(),
            "expires": self.expires.isoformat(),
            "revoked": self.revoked,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenRecord:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            tenant=str(data["tenant"]),
            role=str(data["role"]),
            created=datetime.fromisoformat(data["created"]),
            expires=datetime.fromisoformat(data["expires"]),
            revoked=bool(data.get("revoked", False)),
            kind=str(data.get("kind", "api")),
        )


def new_token(
    secret: str, *, name: str, tenant: str, role: str, lifetime: timedelta, now: datetime
) -> tuple[TokenRecord, str]:
    """A new token record and the signed token (shown once, never stored)."""
    now = now.replace(microsecond=0)
    record = TokenRecord(
        id=secrets.token_hex(8),
        name=name,
        tenant=tenant,
        role=role,
        created=now,
        expires=now + lifetime,
    )
    claims = {
        "jti": record.id,
        "sub": name,
        "tenant": tenant,
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int(record.expires.timestamp()),
        "typ": API,
    }
    return record, jwt.encode(claims, secret, algorithm=ALGORITHM)


def new_session(
    secret: str, username: str, lifetime: timedelta, now: datetime
) -> tuple[TokenRecord, str]:
    """A UI session: its record (kept by the token store so that a logout revokes it on every
    replica) and the signed cookie value."""
    now = now.replace(microsecond=0)
    record = TokenRecord(
        id=secrets.token_hex(12),
        name=username,
        tenant="",
        role="session",
        created=now,
        expires=now + lifetime,
        kind="session",
    )
    claims = {
        "jti": record.id,
        "sub": username,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "typ": SESSION,
    }
    return record, jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str, kind: str) -> dict[str, Any]:
    """The claims of a valid token of ``kind``; ``InvalidToken`` otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "typ"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if claims.get("typ") != kind:
        raise InvalidToken(f"not a {kind} token")
    if kind == API and not all(isinstance(claims.get(k), str) for k in ("jti", "tenant", "role")):
        raise InvalidToken("incomplete token")
    if kind == SESSION and not isinstance(claims.get("jti"), str):
        raise InvalidToken("a session from before sessions were revocable: log in again")
    return claims


def utcnow() -> datetime:
    return datetime.now(UTC)
