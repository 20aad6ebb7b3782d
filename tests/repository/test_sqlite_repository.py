"""The repository contract on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
