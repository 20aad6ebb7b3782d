"""``lanner token create|list|revoke`` on the server's configuration file (issue 13).

The token is the last word printed; the server on the same configuration accepts it, and the
CLI's API commands send it from ``LANNER_API_TOKEN``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from argon2 import PasswordHasher
from click.testing import CliRunner

from common.backends import Backends, create_queue, create_repositories, create_storage
from common.cli import cli
from common.cli.flow import flow
from common.cli.token import token
from common.settings import Settings
from tests.webserver.conftest import HELLO
from webserver.app import create_app, stop_live_feeds

cli.add_command(token)
cli.add_command(flow)
_CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw-admin")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "lanner.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "auth": {
                    "enabled": True,
                    "token_secret": "cli-test-secret-0123456789abcdef0123456789",
                    # a hash of cheap parameters: a plain password costs a full hash per load
                    "users": [{"username": "admin", "password": _CHEAP_HASH, "role": "admin"}],
                },
            }
        )
    )
    return path


@pytest.fixture
def server(config: Path) -> Iterator[str]:
    settings = Settings.load(config)
    settings.data_dir.mkdir(parents=True)
    queue = create_queue(settings)
    backends = Backends(queue, create_repositories(settings), create_storage(settings), settings)
    app = create_app(settings, backends)
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        thread.join(0.02)
    yield f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)
    stop_live_feeds(app)
    queue.close()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_token_create_prints_the_token_last_and_it_works_against_a_server(
    config: Path, server: str
) -> None:
    code, out, err = run(
        "token",
        "create",
        "--config",
        str(config),
        "--tenant",
        "main",
        "--role",
        "editor",
        "--name",
        "ci",
    )
    assert code == 0, err
    signed = out.split()[-1]
    token_id = out.split()[1]
    headers = {"Authorization": f"Bearer {signed}"}
    with httpx.Client(base_url=server, timeout=30) as api:
        assert api.get("/api/v1/flows/search").status_code == 401
        assert api.get("/api/v1/flows/search", headers=headers).status_code == 200
        # bound to main: another tenant is a 404
        assert api.get("/api/v1/acme/flows/search", headers=headers).status_code == 404
    # the CLI's API commands take it from LANNER_API_TOKEN
    flows = config.parent / "flows"
    flows.mkdir()
    (flows / "hello.yml").write_text(HELLO)
    code, out, err = run("flow", "deploy", str(flows), "--server", server)
    assert code == 1 and "HTTP 401" in err
    code, out, err = run(
        "flow", "deploy", str(flows), "--server", server, env={"LANNER_API_TOKEN": signed}
    )
    assert code == 0, err
    code, out, _ = run("token", "list", "--config", str(config))
    assert code == 0 and token_id in out and signed not in out
    code, out, _ = run("token", "revoke", "--config", str(config), token_id)
    assert code == 0 and "revoked" in out
    with httpx.Client(base_url=server, timeout=30) as api:
        assert api.get("/api/v1/flows/search", headers=headers).status_code == 401


def test_token_create_needs_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "lanner.yml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "auth": {"enabled": True}}))
    code, _, err = run("token", "create", "--config", str(path), "--name", "x")
    assert code == 2 and "token_secret" in err
