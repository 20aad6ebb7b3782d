"""The repository contract on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.models.messages import LogEntry
from common.queue.sqlite import SqliteDatabase
from common.repository.base import Repositories
from common.repository.sqlite import level_number, sqlite_repositories
from tests.contracts.repository import RepositoryContract


@pytest.fixture
def repositories(tmp_path: Path) -> Iterator[Repositories]:
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    yield sqlite_repositories(db)
    db.close()


class TestSqliteRepository(RepositoryContract):
    pass


def test_level_order() -> None:
    assert [level_number(x) for x in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")] == [0, 1, 2, 3, 4]
    assert level_number("warning") == 3


def test_tables_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "lanner.db")
    db = SqliteDatabase(path)
    from tests.contracts.repository import make_execution

    sqlite_repositories(db).executions.save(make_execution("e1"))
    db.close()
    db = SqliteDatabase(path)
    assert sqlite_repositories(db).executions.get("main", "e1") is not None
    db.close()


def test_logs_stored_before_log_search_are_searchable(tmp_path: Path) -> None:
    """A database from before the namespace/flow/task columns gets them, filled from the JSON."""
    from common.repository.base import LogQuery
    from tests.contracts.repository import T0

    path = str(tmp_path / "lanner.db")
    db = SqliteDatabase(path)
    entry = LogEntry(
        namespace="company.team", flow_id="hello", task_id="log", timestamp=T0, message="old line"
    )
    body = entry.to_json().decode()
    db.executescript(
        "CREATE TABLE repo_logs (hash TEXT PRIMARY KEY, tenant TEXT NOT NULL, execution_id TEXT, "
        "task_run_id TEXT, level INTEGER NOT NULL, timestamp TEXT NOT NULL, body TEXT NOT NULL);"
    )
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO repo_logs VALUES ('h', 'main', 'e1', 'tr1', 2, "
            "'2024-05-01T12:00:00.000000Z', ?)",
            (body,),
        )
    logs = sqlite_repositories(db).logs
    found = logs.search(LogQuery(namespace="company", flow_id="hello", task_id="log"))
    assert [e.message for e in found.results] == ["old line"]
    db.close()
