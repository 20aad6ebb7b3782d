"""API tokens on Kafka (issue 13): two webserver replicas, each reading the compacted `tokens`
topic, see a token created through one, and its revocation through the other; the CLI writes
to the same topic. No Elasticsearch is involved: tokens work while it is down."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from common.auth import AuthSettings
from common.auth.kafka_store import KafkaTokenStore
from common.backends import Backends
from common.cli import cli
from common.cli.token import token
from common.queue.kafka_client import create_admin, ensure_topics
from common.queue.kafka_topics import plan_topics
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from common.storage.local import LocalStorage
from tests.infra.waiting import wait_until
from webserver.app import create_app

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

SECRET = "kafka-test-secret-0123456789abcdefghij"
ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:pw").decode()}
cli.add_command(token)


@pytest.fixture
def settings(kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path) -> Settings:
    prefix = unique_name + "."
    tokens = [t for t in plan_topics(prefix) if t.spec.name == "tokens"]
    ensure_topics(create_admin(kafka_bootstrap_servers), tokens)
    auth = AuthSettings.model_validate(
        {
            "enabled": True,
            "token_secret": SECRET,
            "users": [{"username": "admin", "password": "pw", "role": "admin"}],
        }
    )
    return Settings(
        data_dir=tmp_path,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        kafka_topic_prefix=prefix,
        auth=auth,
    )


@pytest.fixture
def replicas(settings: Settings, tmp_path: Path) -> Iterator[list[TestClient]]:
    """Two apps, each with its own token store on the topic (and its own SQLite elsewhere)."""
    clients: list[TestClient] = []
    closers = []
    for n in range(2):
        db = SqliteDatabase(str(tmp_path / f"replica{n}.db"))
        backends = Backends(
            SqliteQueue(db), sqlite_repositories(db), LocalStorage(tmp_path / f"s{n}"), settings
        )
        store = KafkaTokenStore.from_settings(settings)
        store.start()
        client = TestClient(create_app(settings, backends, token_store=store))
        clients.append(client.__enter__())
        closers.append((client, store, backends.queue, db))
    yield clients
    for client, store, queue, db in closers:
        client.__exit__(None, None, None)
        store.stop()
        queue.close()
        db.close()


def test_a_token_and_its_revocation_reach_every_replica(
    settings: Settings, replicas: list[TestClient], tmp_path: Path
) -> None:
    one, two = replicas
    created = one.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"}, headers=ADMIN)
    assert created.status_code == 200, created.text
    bearer = {"Authorization": f"Bearer {created.json()['token']}"}
    # the other replica has not necessarily read it yet: a miss reads to the topic's end
    assert two.get("/api/v1/flows/search", headers=bearer).status_code == 200
    revoked = two.delete(f"/api/v1/tokens/{created.json()['id']}", headers=ADMIN)
    assert revoked.status_code == 200
    wait_until(
        lambda: one.get("/api/v1/flows/search", headers=bearer).status_code == 401,
        60,
        "the revocation to reach the first replica",
    )
    # the CLI writes to the same topic
    config = tmp_path / "lanner.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "queue": "kafka",
                "data_dir": str(tmp_path),
                "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
                "kafka_topic_prefix": settings.kafka_topic_prefix,
                "auth": {"enabled": True, "token_secret": SECRET},
            }
        )
    )
    result = CliRunner().invoke(
        cli, ["token", "create", "--config", str(config), "--role", "editor", "--name", "cli"]
    )
    assert result.exit_code == 0, result.output
    from_cli = {"Authorization": f"Bearer {result.stdout.split()[-1]}"}
    assert one.get("/api/v1/flows/search", headers=from_cli).status_code == 200
    listed = two.get("/api/v1/tokens", headers=ADMIN).json()
    assert {t["name"]: t["revoked"] for t in listed} == {"ci": True, "cli": False}


def test_a_logout_reaches_every_replica_and_expired_records_are_tombstoned(
    settings: Settings, replicas: list[TestClient]
) -> None:
    """A UI session made on one replica works on the other; its logout on the other revokes it
    on the first too. Expired records get tombstones (compaction drops them from the topic)."""
    from datetime import timedelta

    from common.auth.tokens import new_token, utcnow

    one, two = replicas
    login = one.post("/api/v1/login", json={"username": "admin", "password": "pw"})
    assert login.status_code == 200
    session = {"Cookie": f"lanner_session={one.cookies.get('lanner_session')}"}
    assert two.get("/api/v1/me", headers=session).status_code == 200
    ui = {**session, "X-Lanner-UI": "1"}
    assert two.post("/api/v1/logout", headers=ui).status_code == 204
    wait_until(
        lambda: one.get("/api/v1/me", headers=session).status_code == 401,
        60,
        "the logout to reach the first replica",
    )
    store = one.app.state.token_store  # type: ignore[attr-defined]
    old, _ = new_token(
        SECRET,
        name="old",
        tenant="main",
        role="viewer",
        lifetime=timedelta(days=1),
        now=utcnow() - timedelta(days=2),
    )
    store.add(old)
    assert store.purge_expired(utcnow()) >= 1
    other = two.app.state.token_store  # type: ignore[attr-defined]
    wait_until(lambda: other.sync() and other.get(old.id) is None, 60, "the tombstone")
