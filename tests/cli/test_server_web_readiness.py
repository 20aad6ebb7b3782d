"""Readiness of `lanner server webserver` / `indexer`: each check says why it is not ready."""

from __future__ import annotations

from pathlib import Path

from common.backends import Backends
from common.cli.server_web import _all_of, _KafkaProbe, _repository_probe
from common.queue.sqlite import SqliteDatabase
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings


def test_the_repository_check_names_the_repository_when_it_fails(
    backends: Backends, tmp_path: Path
) -> None:
    assert _repository_probe(backends)() is None
    db = SqliteDatabase(str(tmp_path / "other.db"))
    broken = Backends(backends.queue, sqlite_repositories(db), backends.storage, backends.settings)
    db.executescript("DROP TABLE repo_executions")  # a repository that cannot answer
    reason = _repository_probe(broken)()
    assert reason is not None and reason.startswith("repository (sqlite) unavailable:")
    db.close()


def test_the_kafka_check_names_the_brokers_it_cannot_reach() -> None:
    probe = _KafkaProbe(Settings(queue="kafka", kafka_bootstrap_servers="127.0.0.1:1"))
    reason = probe()
    assert reason is not None and reason.startswith("Kafka unreachable at 127.0.0.1:1")


def test_readiness_lists_every_reason() -> None:
    assert _all_of([lambda: None, lambda: None])() is None
    assert _all_of([lambda: "a down", lambda: None, lambda: "b down"])() == "a down; b down"
