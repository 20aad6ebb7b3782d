"""Authentication and authorization of the API (issue 13).

Off unless ``auth.enabled``. Then every request under ``/api/`` needs a credential, except the
webhooks (their key is their credential) and the login itself:

- ``Authorization: Basic`` with a user of the configuration (argon2 hash);
- ``Authorization: Bearer <API token>`` (``common.auth.tokens``): bound to one tenant and a role;
- the UI's session cookie, set by ``POST /api/v1/login``; a write through the cookie must carry
  the ``X-Lanner-UI`` header, which a cross-site form cannot send (CSRF), and the cookie is
  ``SameSite=Strict`` and ``HttpOnly``.

``AuthMiddleware`` answers 401 before any route runs (no route, body or parameter is looked at
for an anonymous request). The ``authorize`` dependency of every API router then checks that
the credential covers the request's tenant (404 otherwise: existence does not leak) and its role:
``viewer`` reads, ``editor`` also writes, ``admin`` also manages tokens (403 otherwise).
``/health/live`` and the UI's static shell stay open; ``/health/ready`` too, but it tells why it
is not ready only to an authenticated caller; the API port's ``/metrics`` needs a credential
(Prometheus scrapes the management port, ``common.management``, which has no authentication).
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from common.auth import ALL_TENANTS, AuthSettings, TokenStore, role_at_least
from common.auth.config import Role
from common.auth.passwords import verify_password
from common.auth.tokens import API, SESSION, InvalidToken, decode, new_session, new_token, utcnow
from common.errors import ConflictError, NotFoundError
from webserver.deps import get_tenant

log = logging.getLogger("lanner.auth")

SESSION_COOKIE = "lanner_session"
UI_HEADER = "x-lanner-ui"
LOGIN_PATH = "/api/v1/login"
# the API port's /metrics needs a credential when authentication is on (flow and namespace
# names are in its series); the management port serves it open (common.management)
METRICS_PATH = "/metrics"
READY_PATH = "/health/ready"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# webhooks: their own key, no user (Kestra); with or without a tenant segment
_PUBLIC = re.compile(r"^/api/v1/(?:[^/]+/)?executions/webhook/")
_WEBHOOK_ROUTE = "/executions/webhook/{namespace}/{flow_id}/{key}"
# POSTs that only read: a viewer may call them
_READ_ONLY_POSTS = ("/flows/validate",)
_PUBLIC_SCOPE_KEY = "lanner.public"
PURGE_SECONDS = 3600.0  # expired tokens and sessions are forgotten at most this often


@dataclass(frozen=True)
class Principal:
    """Who a request is: a user (Basic or session) or an API token."""

    name: str
    role: str
    tenants: tuple[str, ...]
    kind: str  # "user", "session" or "token"
    token_id: str | None = None

    def covers(self, tenant: str) -> bool:
        return ALL_TENANTS in self.tenants or tenant in self.tenants

    def to_json(self) -> dict[str, Any]:
        return {"username": self.name, "role": self.role, "tenants": list(self.tenants)}


class Throttled(Exception):
    """Too many failed logins for this user name or client address: retry after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"too many failed logins: retry in {math.ceil(seconds)} s")
        self.seconds = seconds


class LoginThrottle:
    """Failed password checks in a sliding window, per user name (``max_failures``) and per
    client address (5 times as many: a NAT's users share one). Past either, every password
    check of that name or address is refused (``Throttled``) without being verified, the right
    password too (else the lockout would not stop guessing), until the oldest failure leaves the
    window. A success forgets the name's failures. In memory, per process: each replica counts
    its own (a client spread over N replicas gets N times the attempts)."""

    PER_ADDRESS = 5
    MAX_KEYS = 100_000

    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _keys(self, username: str, client: str | None) -> list[tuple[tuple[str, str], int]]:
        keys = [(("user", username), self.max_failures)]
        if client:
            keys.append((("address", client), self.max_failures * self.PER_ADDRESS))
        return keys

    def check(self, username: str, client: str | None) -> None:
        if self.max_failures <= 0:
            return
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(username, client):
                times = self._failures.get(key)
                if times is None:
                    continue
                while times and times[0] <= now - self.window:
                    times.popleft()
                if len(times) >= limit:
                    wait = max(wait, times[-limit] + self.window - now)
        if wait > 0:
            raise Throttled(wait)

    def failed(self, username: str, client: str | None) -> None:
        if self.max_failures <= 0:
            return
        now = self.clock()
        with self._lock:
            if len(self._failures) >= self.MAX_KEYS:
                self._prune(now)
            for key, limit in self._keys(username, client):
                self._failures.setdefault(key, deque(maxlen=limit)).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(("user", username), None)

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window]:
            del self._failures[key]
        while len(self._failures) >= self.MAX_KEYS:  # still full: forget the oldest keys
            del self._failures[next(iter(self._failures))]


class Authenticator:
    """Turns a request's credential into a ``Principal`` (blocking: argon2, the store)."""

    def __init__(self, auth: AuthSettings, store: TokenStore) -> None:
        self.auth = auth
        self.store = store
        self.secret = auth.secret()
        self.throttle = LoginThrottle(auth.max_failed_logins, auth.failed_login_window_seconds)
        self._next_purge = 0.0

    def basic(self, username: str, password: str, client: str | None = None) -> Principal | None:
        """``Throttled`` after too many failures for ``username`` or ``client``."""
        self.throttle.check(username, client)
        user = self.auth.user(username)
        if user is None or not verify_password(
            user.password.get_secret_value(), password, username
        ):
            log.info("failed login for user name %r from %s", username[:100], client)
            self.throttle.failed(username, client)
            return None
        self.throttle.succeeded(username)
        return Principal(user.username, user.role, tuple(user.tenants), "user")

    def bearer(self, token: str) -> Principal | None:
        try:
            claims = decode(self.secret, token, API)
        except InvalidToken as exc:
            log.info("API token refused: %s", exc)
            return None
        record = self.store.get(claims["jti"])
        if record is None or record.revoked or record.expires <= utcnow():
            log.info("API token %s refused: unknown, revoked or expired", claims["jti"])
            return None
        return Principal(record.name, record.role, (record.tenant,), "token", record.id)

    def session(self, token: str) -> Principal | None:
        try:
            claims = decode(self.secret, token, SESSION)
        except InvalidToken:
            return None
        # the store knows every session unrevoked until its logout (on every replica: Kafka)
        record = self.store.get(claims["jti"])
        if record is None or record.revoked or record.kind != "session":
            return None
        user = self.auth.user(str(claims["sub"]))
        if user is None:
            return None
        return Principal(user.username, user.role, tuple(user.tenants), "session", record.id)

    def new_session(self, username: str) -> tuple[str, timedelta]:
        """A session cookie for ``username``, recorded in the store (a logout revokes it);
        expired tokens and sessions are forgotten at most once per ``PURGE_SECONDS``."""
        lifetime = timedelta(hours=self.auth.session_hours)
        now = utcnow()
        record, cookie = new_session(self.secret, username, lifetime, now)
        self.store.add(record)
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + PURGE_SECONDS
            try:
                purged = self.store.purge_expired(now)
            except Exception:  # noqa: BLE001 - a purge is housekeeping, never a failed login
                log.exception("purging expired tokens and sessions failed")
            else:
                if purged:
                    log.info("forgot %d expired tokens and sessions", purged)
        return cookie, lifetime

    def end_session(self, principal: Principal) -> None:
        if principal.kind == "session" and principal.token_id is not None:
            self.store.revoke(principal.token_id)

    def authenticate(
        self, authorization: str | None, cookie: str | None, client: str | None = None
    ) -> Principal | None:
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "basic":
                pair = _basic_pair(value.strip())
                return self.basic(*pair, client) if pair else None
            if scheme.lower() == "bearer":
                return self.bearer(value.strip())
            return None
        if cookie:
            return self.session(cookie)
        return None


def _basic_pair(value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def _cookie(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == SESSION_COOKIE and val:
                    return val
    return None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def too_many(exc: Throttled) -> JSONResponse:
    return JSONResponse(
        {"message": f"{exc}: too many failed logins for this user or address"},
        status_code=429,
        headers={"Retry-After": str(max(1, math.ceil(exc.seconds)))},
    )


def unauthorized(ui: bool) -> JSONResponse:
    # a Basic challenge makes a browser pop its own dialog: not for the UI's calls
    challenge = 'Session realm="Lanner"' if ui else 'Basic realm="Lanner"'
    return JSONResponse(
        {"message": "authentication required: log in, or send a user or an API token"},
        status_code=401,
        headers={"WWW-Authenticate": challenge},
    )


class AuthMiddleware:
    """401 for an anonymous request under ``/api/`` when authentication is on."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and path == READY_PATH:
            # open (the UI's banner polls it before a login), but the reason it is not ready
            # (an exception's text: hosts, files) is only told to an authenticated caller
            authorization, cookie = _header(scope, b"authorization"), _cookie(scope)
            if authorization or cookie:
                try:
                    principal = await anyio.to_thread.run_sync(
                        self.authenticator.authenticate, authorization, cookie, _client(scope)
                    )
                except Throttled:
                    principal = None
                if principal is not None:
                    scope.setdefault("state", {})["principal"] = principal
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http" or not (path.startswith("/api/") or path == METRICS_PATH):
            await self.app(scope, receive, send)
            return
        if _PUBLIC.match(path) or path == LOGIN_PATH:
            scope[_PUBLIC_SCOPE_KEY] = True
            await self.app(scope, receive, send)
            return
        ui = _header(scope, UI_HEADER.encode()) is not None
        authorization = _header(scope, b"authorization")
        cookie = _cookie(scope)
        try:
            principal = await anyio.to_thread.run_sync(
                self.authenticator.authenticate, authorization, cookie, _client(scope)
            )
        except Throttled as exc:
            await too_many(exc)(scope, receive, send)
            return
        if principal is None:
            await unauthorized(ui)(scope, receive, send)
            return
        if principal.kind == "session" and scope.get("method") not in _SAFE_METHODS and not ui:
            response = JSONResponse(
                {"message": f"a write through the UI session needs the {UI_HEADER} header"},
                status_code=403,
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def authenticated(request: Request) -> bool:
    """Authentication is off, or the request carries a valid credential."""
    return not _enabled(request) or _principal(request) is not None


def _principal(request: Request) -> Principal | None:
    principal = getattr(request.state, "principal", None)
    return principal if isinstance(principal, Principal) else None


def _enabled(request: Request) -> bool:
    return bool(request.app.state.settings.auth.enabled)


def authorize(request: Request) -> None:
    """Every API router's dependency: the credential covers the tenant (else 404) and its role
    allows the method (else 403)."""
    if not _enabled(request):
        return
    route_path = str(getattr(request.scope.get("route"), "path", ""))
    if request.scope.get(_PUBLIC_SCOPE_KEY):
        # the middleware let the path through by its look: only the webhook route itself is
        # open (`/executions/webhook/restart` is the restart of an execution id "webhook")
        if route_path.endswith(_WEBHOOK_ROUTE):
            return
        raise HTTPException(401, "authentication required")
    principal = _principal(request)
    if principal is None:  # the middleware lets no anonymous request through: be safe anyway
        raise HTTPException(401, "authentication required")
    if not principal.covers(get_tenant(request)):
        raise NotFoundError("not found")
    if request.method in _SAFE_METHODS:
        return
    if request.method == "POST" and route_path.endswith(_READ_ONLY_POSTS):
        return
    if not role_at_least(principal.role, "editor"):
        raise HTTPException(403, f"role {principal.role} may only read")


def require_admin(request: Request) -> None:
    if not _enabled(request):
        raise ConflictError("authentication is not enabled (auth.enabled)")
    principal = _principal(request)
    if principal is None or not role_at_least(principal.role, "admin"):
        raise HTTPException(403, "only an admin may do this")


AUTHORIZE = [Depends(authorize)]


# ---------------------------------------------------------------- login and session

session_router = APIRouter(tags=["auth"])


class Login(BaseModel):
    username: str
    password: str = Field(repr=False)


@session_router.post(
    "/login", summary="Log in: sets the UI's session cookie (401 on a wrong password)"
)
async def login(request: Request, body: Annotated[Login | None, Body()] = None) -> Any:
    if not _enabled(request):
        return {"authEnabled": False}
    authenticator: Authenticator = request.app.state.authenticator
    pair = None
    if body is not None:
        pair = (body.username, body.password)
    else:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            pair = _basic_pair(header[6:].strip())
    client = request.client.host if request.client else None
    try:
        principal = (
            await anyio.to_thread.run_sync(authenticator.basic, *pair, client) if pair else None
        )
    except Throttled as exc:
        return too_many(exc)
    if principal is None:
        return unauthorized(request.headers.get(UI_HEADER) is not None)
    cookie, lifetime = await anyio.to_thread.run_sync(authenticator.new_session, principal.name)
    response = JSONResponse({"authEnabled": True, **principal.to_json()})
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@session_router.post(
    "/logout", summary="Log out: ends the UI session (revoked on every replica), clears its cookie"
)
async def logout(request: Request) -> Response:
    principal = _principal(request)
    if _enabled(request) and principal is not None:
        authenticator: Authenticator = request.app.state.authenticator
        await anyio.to_thread.run_sync(authenticator.end_session, principal)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@session_router.get("/me", summary="Who the request is authenticated as")
async def me(request: Request) -> Any:
    principal = _principal(request)
    if not _enabled(request) or principal is None:
        return {"authEnabled": False}
    return {"authEnabled": True, **principal.to_json()}


# ---------------------------------------------------------------- API tokens (admin)

tokens_router = APIRouter(tags=["auth"], dependencies=[Depends(require_admin)])


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role = "viewer"
    expires_in_days: float | None = Field(default=None, alias="expiresInDays", gt=0)


def _store(request: Request) -> TokenStore:
    store: TokenStore = request.app.state.token_store
    return store


@tokens_router.get("/tokens", summary="API tokens of the tenant (never the tokens themselves)")
async def list_tokens(request: Request) -> Any:
    tenant = get_tenant(request)
    records = await anyio.to_thread.run_sync(_store(request).list, tenant)
    return [record.to_json() for record in records]


@tokens_router.post("/tokens", summary="Create an API token of the tenant (shown once)")
async def create_token(request: Request, body: TokenCreate) -> Any:
    principal = _principal(request)
    assert principal is not None  # require_admin
    auth: AuthSettings = request.app.state.settings.auth
    days = body.expires_in_days or auth.token_days
    record, token = new_token(
        auth.secret(),
        name=body.name,
        tenant=get_tenant(request),
        role=body.role,
        lifetime=timedelta(days=days),
        now=utcnow(),
    )
    await anyio.to_thread.run_sync(_store(request).add, record)
    log.info("API token %s (%s) created by %s", record.id, record.name, principal.name)
    return {**record.to_json(), "token": token}


@tokens_router.delete("/tokens/{token_id}", summary="Revoke an API token")
async def revoke_token(token_id: str, request: Request) -> Any:
    store = _store(request)
    record = await anyio.to_thread.run_sync(store.get, token_id)
    if record is None or record.tenant != get_tenant(request):
        raise NotFoundError(f"token '{token_id}' not found")
    revoked = await anyio.to_thread.run_sync(store.revoke, token_id)
    assert revoked is not None
    return revoked.to_json()
