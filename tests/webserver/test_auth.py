"""Authentication, roles, API tokens and tenant isolation of the API (issue 13).

Kestra's OSS server has Basic auth only (``kestra.server.basic-auth``); its EE adds API tokens,
roles and tenants, whose rule that another tenant's object answers 404 (not 403) we follow.
Every case of the issue's "Done when" is a test here, on the embedded backend.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from common.auth import AuthSettings
from common.auth.tokens import new_token, utcnow
from common.backends import Backends
from common.settings import Settings
from tests.webserver.conftest import HELLO
from webserver.app import create_app

SECRET = "test-secret-0123456789abcdef0123456789"
# cheap argon2 parameters: verification cost is not what these tests are about
_CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORDS = {"admin": "admin-pw", "editor": "editor-pw", "viewer": "viewer-pw"}
YAML = {"Content-Type": "application/x-yaml"}


def _users() -> list[dict[str, Any]]:
    return [
        {"username": name, "password": _CHEAP.hash(pw), "role": name, "tenants": ["main"]}
        if name != "admin"
        else {"username": name, "password": _CHEAP.hash(pw), "role": name, "tenants": ["*"]}
        for name, pw in PASSWORDS.items()
    ]


def auth_settings(backends: Backends) -> Settings:
    auth = AuthSettings.model_validate({"enabled": True, "token_secret": SECRET, "users": _users()})
    return backends.settings.model_copy(update={"auth": auth})


@pytest.fixture
def secured(backends: Backends) -> FastAPI:
    return create_app(auth_settings(backends), backends)


@pytest.fixture
def anonymous(secured: FastAPI) -> Iterator[TestClient]:
    with TestClient(secured, raise_server_exceptions=False) as client:
        yield client


def basic(user: str, password: str | None = None) -> dict[str, str]:
    pair = f"{user}:{password if password is not None else PASSWORDS[user]}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token(client: TestClient, tenant: str, role: str, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/{tenant}/tokens",
        json={"name": f"{tenant}-{role}", "role": role, **extra},
        headers=basic("admin"),
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _hello_and_execution(client: TestClient) -> str:
    response = client.post("/api/v1/main/flows", content=HELLO, headers={**YAML, **basic("editor")})
    assert response.status_code == 200, response.text
    response = client.post("/api/v1/main/executions/company.team/hello", headers=basic("editor"))
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _concrete(path: str) -> str:
    return (
        path.replace("{tenant}", "main")
        .replace("{path:path}", "x")
        .replace("{", "")
        .replace("}", "")
    )


def test_every_api_route_answers_401_without_credentials(
    secured: FastAPI, anonymous: TestClient
) -> None:
    """The app's routes are enumerated (from its OpenAPI document, which every router in the
    docs is part of, each also under ``/{tenant}``): a route added later is covered."""
    schema = secured.openapi()
    # the app's OpenAPI is built without credentials: reading it through HTTP needs them
    checked = 0
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/") or "/executions/webhook/" in path:
            continue  # health and metrics stay open; webhooks keep their own key (below)
        variants = [path]
        if path.startswith("/api/v1/") and path not in ("/api/v1/login",):
            variants.append("/api/v1/{tenant}/" + path.removeprefix("/api/v1/"))
        for method in operations:
            for variant in variants:
                response = anonymous.request(method.upper(), _concrete(variant))
                assert response.status_code == 401, (method, variant, response.text)
                checked += 1
    for path in ("/api/docs", "/api/openapi.json"):
        assert anonymous.get(path).status_code == 401
    assert checked > 80, checked  # every router twice (default tenant and /{tenant}), login...
    # an unknown path under /api/ tells nothing either
    assert anonymous.get("/api/v1/no/such/thing").status_code == 401
    # the static shell and the health probes stay open; the API port's metrics do not (the
    # management port serves them open: tests/cli/test_server_local_management.py)
    assert anonymous.get("/ui/").status_code in (200, 404)  # 404 only when the UI is not built
    assert anonymous.get("/health/live").status_code == 200
    assert anonymous.get("/health/ready").status_code == 200
    assert anonymous.get("/metrics").status_code == 401
    # webhooks need no user: an unknown flow is a 404, not a 401
    hook = anonymous.post("/api/v1/executions/webhook/company.team/nope/key")
    assert hook.status_code == 404
    # only the webhook route is open, not routes whose path merely looks like it: the creation
    # of an execution of namespace "webhook", orders to an execution whose id is "webhook"
    for method, path in (
        ("POST", "/api/v1/executions/webhook/hello"),
        ("POST", "/api/v1/main/executions/webhook/restart"),
        ("GET", "/api/v1/executions/webhook/follow"),
        ("DELETE", "/api/v1/main/executions/webhook/kill"),
    ):
        assert anonymous.request(method, path).status_code == 401, path


def test_a_webhook_starts_an_execution_without_credentials(anonymous: TestClient) -> None:
    _hello_and_execution(anonymous)
    response = anonymous.post("/api/v1/executions/webhook/company.team/hello/s3cr3t")
    assert response.status_code == 200, response.text
    assert response.json()["flowId"] == "hello"


def test_a_wrong_password_or_unknown_user_gives_401(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/flows/search", headers=basic("admin")).status_code == 200
    assert anonymous.get("/api/v1/flows/search", headers=basic("admin", "nope")).status_code == 401
    assert anonymous.get("/api/v1/flows/search", headers=basic("ghost", "x")).status_code == 401
    broken = {"Authorization": "Basic !!!not-base64"}
    assert anonymous.get("/api/v1/flows/search", headers=broken).status_code == 401
    login = anonymous.post("/api/v1/login", json={"username": "admin", "password": "nope"})
    assert login.status_code == 401


def test_a_viewer_reads_but_its_writes_give_403(anonymous: TestClient) -> None:
    execution_id = _hello_and_execution(anonymous)
    viewer = basic("viewer")
    assert anonymous.get("/api/v1/flows/company.team/hello", headers=viewer).status_code == 200
    assert anonymous.get(f"/api/v1/executions/{execution_id}", headers=viewer).status_code == 200
    validate = anonymous.post("/api/v1/flows/validate", content=HELLO, headers={**YAML, **viewer})
    assert validate.status_code == 200  # a POST that only reads
    writes = [
        ("POST", "/api/v1/flows", HELLO),
        ("PUT", "/api/v1/flows/company.team/hello", HELLO),
        ("DELETE", "/api/v1/flows/company.team/hello", None),
        ("POST", "/api/v1/executions/company.team/hello", None),
        ("DELETE", f"/api/v1/executions/{execution_id}/kill", None),
        ("POST", f"/api/v1/executions/{execution_id}/restart", None),
        ("POST", "/api/v1/tokens", None),
    ]
    for method, path, body in writes:
        response = anonymous.request(method, path, content=body, headers={**YAML, **viewer})
        assert response.status_code == 403, (method, path, response.text)
    assert anonymous.get("/api/v1/flows/company.team/hello", headers=viewer).status_code == 200


def test_an_editor_writes_flows_and_acts_on_executions_but_not_on_tokens(
    anonymous: TestClient,
) -> None:
    execution_id = _hello_and_execution(anonymous)  # create flow + execution as the editor
    editor = basic("editor")
    kill = anonymous.delete(f"/api/v1/executions/{execution_id}/kill", headers=editor)
    assert kill.status_code in (202, 409), kill.text  # 409: it ended first
    update = anonymous.put(
        "/api/v1/flows/company.team/hello", content=HELLO, headers={**YAML, **editor}
    )
    assert update.status_code == 200, update.text
    assert anonymous.get("/api/v1/tokens", headers=editor).status_code == 403
    created = anonymous.post("/api/v1/tokens", json={"name": "x"}, headers=editor)
    assert created.status_code == 403


def test_a_token_of_tenant_acme_gets_no_data_of_tenant_main(anonymous: TestClient) -> None:
    execution_id = _hello_and_execution(anonymous)
    acme = bearer(_token(anonymous, "acme", "admin")["token"])
    # main's objects, by main's paths and by the default tenant's: 404, as if they did not exist
    for path in (
        "/api/v1/main/flows/company.team/hello",
        "/api/v1/flows/company.team/hello",
        f"/api/v1/main/executions/{execution_id}",
        f"/api/v1/executions/{execution_id}",
        "/api/v1/main/executions/search",
        "/api/v1/main/flows/search",
        f"/api/v1/main/logs/{execution_id}",
        "/api/v1/main/tokens",
    ):
        response = anonymous.get(path, headers=acme)
        assert response.status_code == 404, (path, response.text)
        assert "main" not in response.json()["message"]
    kill = anonymous.delete(f"/api/v1/main/executions/{execution_id}/kill", headers=acme)
    assert kill.status_code == 404
    # the same ids through acme's own paths: not there either
    assert anonymous.get(f"/api/v1/acme/executions/{execution_id}", headers=acme).status_code == 404
    assert anonymous.get("/api/v1/acme/flows/company.team/hello", headers=acme).status_code == 404
    # acme's lists hold none of main's data, and acme's own flow is acme's
    created = anonymous.post("/api/v1/acme/flows", content=HELLO, headers={**YAML, **acme})
    assert created.status_code == 200, created.text
    executions = anonymous.get("/api/v1/acme/executions/search", headers=acme).json()
    assert executions["total"] == 0
    flows = anonymous.get("/api/v1/acme/flows/search", headers=acme).json()
    assert [f["namespace"] for f in flows["results"]] == ["company.team"]
    main_flows = anonymous.get("/api/v1/main/flows/search", headers=basic("admin")).json()
    assert main_flows["total"] == 1  # acme's flow is not main's
    # a main user cannot reach acme either
    hidden = anonymous.get("/api/v1/acme/flows/company.team/hello", headers=basic("viewer"))
    assert hidden.status_code == 404


def test_a_tampered_token_gives_401(anonymous: TestClient) -> None:
    token = _token(anonymous, "main", "viewer")["token"]
    assert anonymous.get("/api/v1/flows/search", headers=bearer(token)).status_code == 200
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    for bad in (
        f"{header}.{forged}.{signature}",  # role raised, signature kept
        f"{header}.{payload}.{signature[:-2]}AA",  # signature changed
        token + "x",
        "not-a-token",
    ):
        response = anonymous.post("/api/v1/flows", content=HELLO, headers={**YAML, **bearer(bad)})
        assert response.status_code == 401, bad
    # signed with another secret, with an id the store knows: refused too
    other = new_token(
        "another-secret-0123456789abcdef0123456789",
        name="x",
        tenant="main",
        role="admin",
        lifetime=timedelta(days=1),
        now=utcnow(),
    )[1]
    assert anonymous.get("/api/v1/flows/search", headers=bearer(other)).status_code == 401


def test_an_expired_token_gives_401(secured: FastAPI, anonymous: TestClient) -> None:
    record, token = new_token(
        SECRET,
        name="old",
        tenant="main",
        role="admin",
        lifetime=timedelta(seconds=30),
        now=utcnow() - timedelta(hours=1),
    )
    secured.state.token_store.add(record)
    assert anonymous.get("/api/v1/flows/search", headers=bearer(token)).status_code == 401


def test_a_revoked_token_gives_401(anonymous: TestClient) -> None:
    created = _token(anonymous, "main", "editor")
    token = bearer(created["token"])
    assert anonymous.get("/api/v1/flows/search", headers=token).status_code == 200
    listed = anonymous.get("/api/v1/main/tokens", headers=basic("admin")).json()
    assert [t["id"] for t in listed] == [created["id"]]
    assert all("token" not in t for t in listed)
    revoked = anonymous.delete(f"/api/v1/main/tokens/{created['id']}", headers=basic("admin"))
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert anonymous.get("/api/v1/flows/search", headers=token).status_code == 401
    # another tenant's token id is not found through acme's path
    other = anonymous.delete(f"/api/v1/acme/tokens/{created['id']}", headers=basic("admin"))
    assert other.status_code == 404


def test_the_ui_session_cookie_and_no_secret_in_answers(anonymous: TestClient) -> None:
    login = anonymous.post("/api/v1/login", json={"username": "editor", "password": "editor-pw"})
    assert login.status_code == 200, login.text
    assert login.json() == {
        "authEnabled": True,
        "username": "editor",
        "role": "editor",
        "tenants": ["main"],
    }
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    me = anonymous.get("/api/v1/me")  # the client keeps the cookie
    assert me.status_code == 200 and me.json()["username"] == "editor"
    # a write through the cookie needs the UI's header (a cross-site form cannot send it)
    refused = anonymous.post("/api/v1/flows", content=HELLO, headers=YAML)
    assert refused.status_code == 403
    ui = {**YAML, "X-Lanner-UI": "1"}
    assert anonymous.post("/api/v1/flows", content=HELLO, headers=ui).status_code == 200
    answers = [login.text, me.text, anonymous.get("/api/openapi.json").text]
    assert not any("$argon2" in text or SECRET in text for text in answers)
    assert anonymous.post("/api/v1/logout", headers={"X-Lanner-UI": "1"}).status_code == 204
    anonymous.cookies.clear()
    assert anonymous.get("/api/v1/me").status_code == 401


def test_a_plain_password_is_hashed_at_load_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="lanner.auth"):
        auth = AuthSettings.model_validate(
            {
                "enabled": True,
                "token_secret": SECRET,
                "users": [{"username": "plain", "password": "hunter2-plain", "role": "viewer"}],
            }
        )
    stored = auth.users[0].password.get_secret_value()
    assert stored.startswith("$argon2id$") and "hunter2-plain" not in stored
    assert "hunter2-plain" not in repr(auth)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'plain'" in w and "plain text" in w for w in warnings)
    assert not any("hunter2-plain" in w for w in warnings)


def test_auth_is_off_by_default(app: FastAPI, client: TestClient) -> None:
    assert not Settings().auth.enabled
    assert client.get("/api/v1/flows/search").status_code == 200
    assert client.get("/api/v1/me").json() == {"authEnabled": False}


def test_auth_is_on_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANNER_AUTH__ENABLED", "true")
    monkeypatch.setenv("LANNER_AUTH__TOKEN_SECRET", SECRET)
    settings = Settings()
    assert settings.auth.enabled and settings.auth.secret() == SECRET


def test_live_views_show_nothing_of_another_tenant(server: str, backends: Backends) -> None:
    """Follow reads the live feed by execution id: an id of another tenant's execution shows
    none of its logs or snapshots (on Kafka the follow may start unchecked)."""
    from common.models.messages import LogEntry
    from common.models.state import State
    from tests.contracts.repository import make_execution

    def entry(tenant: str, message: str) -> bytes:
        return LogEntry(
            tenant_id=tenant,
            namespace="company.team",
            flow_id="hello",
            execution_id="e1",
            task_id="log",
            task_run_id="tr1",
            timestamp=utcnow(),
            level="INFO",
            message=message,
        ).to_json()

    with httpx.Client(base_url=server, timeout=30) as http:
        with http.stream("GET", "/api/v1/acme/logs/e1/follow") as response:
            assert response.status_code == 200
            lines = (line for line in response.iter_lines() if line.startswith("data: "))
            backends.queue.emit("logs", "e1", entry("main", "main's secret"))
            backends.queue.emit("logs", "e1", entry("acme", "acme's own"))
            assert json.loads(next(lines)[6:])["message"] == "acme's own"
    main_execution = make_execution("e2", state=State.RUNNING, sequence=1)
    assert main_execution.tenant_id in (None, "main")
    backends.repositories.executions.save(main_execution)
    with httpx.Client(base_url=server, timeout=30) as http:
        assert http.get("/api/v1/acme/executions/e2/follow").status_code == 404


def test_a_bad_auth_configuration_never_prints_its_secrets() -> None:
    for auth, named in (
        ({"enabled": True, "token_secret": "short-but-secret"}, "token_secret"),
        ({"enabled": True, "token_secret": "short-but-secret", "users": "nope"}, "auth.users"),
    ):
        with pytest.raises(ValueError) as raised:
            Settings.model_validate({"auth": auth})
        assert named in str(raised.value) and "short-but-secret" not in str(raised.value)


def test_health_tells_why_not_ready_only_to_a_credential(
    secured: FastAPI, anonymous: TestClient
) -> None:
    """``/health/ready`` stays open (the UI's banner polls it before a login) but the reason,
    an exception's text naming hosts and files, is only for an authenticated caller; the API
    port's ``/metrics`` (flow names in its series) needs a credential."""
    secured.state.readiness = lambda: "repository (elasticsearch) unavailable: http://es-7:9200"
    down = anonymous.get("/health/ready")
    assert down.status_code == 503 and down.json()["status"] == "DOWN"
    assert "es-7" not in down.text and "elasticsearch" not in down.text
    viewer = basic("viewer")
    told = anonymous.get("/health/ready", headers=viewer)
    assert told.status_code == 503 and "es-7:9200" in told.json()["message"]
    wrong = anonymous.get("/health/ready", headers=basic("viewer", "wrong"))
    assert wrong.status_code == 503 and "es-7" not in wrong.text
    assert anonymous.get("/metrics").status_code == 401
    metrics = anonymous.get("/metrics", headers=viewer)
    assert metrics.status_code == 200 and "lanner_webserver_http_requests" in metrics.text


def test_too_many_failed_logins_answer_429_with_retry_after(
    secured: FastAPI, anonymous: TestClient
) -> None:
    """Past ``auth.max_failed_logins`` failures of a user name in the window (10 in 5 min by
    default; 3 here), its password checks answer 429 with ``Retry-After``, through Basic and
    ``POST /login`` alike, the right password too (else the lockout would not stop guessing),
    while other users are not affected; once the failures leave the window (a clock of the
    test's: no waiting) the right password works again. OWASP's authentication cheat sheet
    ("Login Throttling"); Kestra's OSS basic auth has none."""
    throttle = secured.state.authenticator.throttle
    now = [1000.0]
    throttle.clock = lambda: now[0]
    throttle.max_failures = 3
    for _ in range(3):
        assert (
            anonymous.get("/api/v1/flows/search", headers=basic("editor", "x")).status_code == 401
        )
    refused = anonymous.get("/api/v1/flows/search", headers=basic("editor"))
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) == 300
    assert "too many failed logins" in refused.json()["message"]
    login = anonymous.post("/api/v1/login", json={"username": "editor", "password": "editor-pw"})
    assert login.status_code == 429 and "Retry-After" in login.headers
    # another user from the same address is not locked out (the address allows 5 x 3)
    assert anonymous.get("/api/v1/flows/search", headers=basic("viewer")).status_code == 200
    now[0] += 301
    assert anonymous.get("/api/v1/flows/search", headers=basic("editor")).status_code == 200
    # the address limit: failures of many user names from one client
    for index in range(15):
        anonymous.get("/api/v1/flows/search", headers=basic(f"nobody{index}", "x"))
    assert anonymous.get("/api/v1/flows/search", headers=basic("admin")).status_code == 429


def test_a_logout_revokes_the_session_server_side(secured: FastAPI, anonymous: TestClient) -> None:
    """The session cookie is a signed token recorded in the token store: a logout revokes it,
    so a copy of the cookie (taken before the logout) is refused afterwards, not only cleared
    from the browser. Sessions never show among the API tokens."""
    login = anonymous.post("/api/v1/login", json={"username": "admin", "password": "admin-pw"})
    assert login.status_code == 200
    copied = anonymous.cookies.get("lanner_session")
    assert copied
    assert anonymous.get("/api/v1/me").json()["username"] == "admin"
    assert anonymous.get("/api/v1/tokens").json() == []
    assert anonymous.post("/api/v1/logout", headers={"X-Lanner-UI": "1"}).status_code == 204
    anonymous.cookies.clear()
    assert (
        anonymous.get("/api/v1/me", headers={"Cookie": f"lanner_session={copied}"}).status_code
        == 401
    )
    # a new login is a new session
    again = anonymous.post("/api/v1/login", json={"username": "admin", "password": "admin-pw"})
    fresh = again.cookies.get("lanner_session")
    assert again.status_code == 200 and fresh and fresh != copied
    anonymous.cookies.clear()
    assert (
        anonymous.get("/api/v1/me", headers={"Cookie": f"lanner_session={fresh}"}).status_code
        == 200
    )


def test_expired_tokens_and_sessions_are_purged(secured: FastAPI) -> None:
    """``purge_expired`` forgets expired tokens and sessions (the webserver runs it at a login,
    at most once an hour); live ones stay."""
    store = secured.state.token_store
    now = utcnow()
    old, _ = new_token(
        SECRET,
        name="old",
        tenant="main",
        role="viewer",
        lifetime=timedelta(days=1),
        now=now - timedelta(days=2),
    )
    live, _ = new_token(
        SECRET, name="live", tenant="main", role="viewer", lifetime=timedelta(days=1), now=now
    )
    store.add(old)
    store.add(live)
    assert store.purge_expired(now) == 1
    assert store.get(old.id) is None and store.get(live.id) is not None
    assert [t.name for t in store.list("main")] == ["live"]
