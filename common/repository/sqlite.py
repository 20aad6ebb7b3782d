"""Repositories on the embedded SQLite database (the same file as the embedded queue).

Executions are stored as their JSON plus indexed columns (tenant, namespace, flow, state,
start/end dates, sequence) and one row per label, so searches never decode every document.
Dates are stored as fixed-width UTC ISO strings (``2024-01-02T03:04:05.000000Z``) so that
text order is time order.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from common.errors import Problem, QueryError, RepositoryError
from common.models.execution import Execution, ExecutionHead
from common.models.messages import LogEntry, MetricEntry, WorkerHeartbeat
from common.models.state import State
from common.models.trigger import TriggerState
from common.queue.sqlite import SqliteDatabase

from .base import (
    DEFAULT_PERCENTS,
    DEFAULT_TENANT,
    LOG_LEVELS,
    MAX_FLOW_GROUPS,
    Durations,
    ExecutionQuery,
    FlowDurations,
    FlowRecord,
    FlowStateCount,
    Interval,
    LogPurge,
    LogQuery,
    Page,
    Repositories,
    StateBucket,
    check_histogram,
    check_page,
    check_percents,
    decode_cursor,
    encode_cursor,
    level_number,
    search_text,
)

__all__ = ["DEFAULT_TENANT", "LOG_LEVELS", "iso", "level_number", "sqlite_repositories"]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS repo_flows (
    tenant TEXT NOT NULL,
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    source TEXT NOT NULL,
    updated TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, namespace, id, revision)
);
CREATE TABLE IF NOT EXISTS repo_executions (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    state TEXT NOT NULL,
    start_date TEXT,
    end_date TEXT,
    sequence INTEGER NOT NULL,
    parent_id TEXT,
    search_text TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX IF NOT EXISTS repo_executions_ns
    ON repo_executions (tenant, namespace, flow_id, start_date);
CREATE INDEX IF NOT EXISTS repo_executions_start ON repo_executions (tenant, start_date);
-- covers the count of an unfiltered list (the executions page's first paint): 100,000
-- executions counted from it in ~10 ms instead of ~250 ms reading every row for `deleted`
CREATE INDEX IF NOT EXISTS repo_executions_live
    ON repo_executions (tenant, deleted, start_date);
CREATE TABLE IF NOT EXISTS repo_execution_labels (
    tenant TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS repo_execution_labels_kv
    ON repo_execution_labels (tenant, key, value, execution_id);
CREATE INDEX IF NOT EXISTS repo_execution_labels_ex
    ON repo_execution_labels (tenant, execution_id);
CREATE TABLE IF NOT EXISTS repo_logs (
    hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    execution_id TEXT,
    task_run_id TEXT,
    level INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    body TEXT NOT NULL,
    namespace TEXT,
    flow_id TEXT,
    task_id TEXT
);
CREATE INDEX IF NOT EXISTS repo_logs_execution ON repo_logs (tenant, execution_id, timestamp);
CREATE TABLE IF NOT EXISTS repo_metrics (
    hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    execution_id TEXT,
    timestamp TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS repo_metrics_execution ON repo_metrics (tenant, execution_id);
CREATE TABLE IF NOT EXISTS repo_triggers (
    uid TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    date TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS repo_triggers_flow ON repo_triggers (tenant, namespace, flow_id);
CREATE TABLE IF NOT EXISTS repo_workers (
    worker_id TEXT PRIMARY KEY,
    date TEXT NOT NULL,
    body TEXT NOT NULL
);
"""

# Columns added to repo_logs after its first release (log search across executions), with the
# JSON field each is filled from in a database created before them.
_LOG_COLUMNS = {"namespace": "$.namespace", "flow_id": "$.flowId", "task_id": "$.taskId"}
_LOG_INDEXES = """
CREATE INDEX IF NOT EXISTS repo_logs_time ON repo_logs (tenant, timestamp);
CREATE INDEX IF NOT EXISTS repo_logs_flow ON repo_logs (tenant, namespace, flow_id, timestamp);
"""


def _migrate_logs(db: SqliteDatabase) -> None:
    columns = {str(r[1]) for r in db.query("PRAGMA table_info(repo_logs)")}
    with db.transaction() as conn:
        for column, path in _LOG_COLUMNS.items():
            if column not in columns:
                conn.execute(f"ALTER TABLE repo_logs ADD COLUMN {column} TEXT")
                conn.execute(f"UPDATE repo_logs SET {column} = json_extract(body, '{path}')")
    db.executescript(_LOG_INDEXES)


def iso(value: datetime | None) -> str | None:
    """Fixed-width UTC text of a date (naive dates are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tenant(tenant_id: str | None) -> str:
    return tenant_id or DEFAULT_TENANT


def _hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


class _Base:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            with self.db.transaction() as conn:
                yield conn
        except sqlite3.Error as exc:
            raise RepositoryError(f"SQLite repository error: {exc}") from exc

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self.db.query(sql, params))
        except sqlite3.Error as exc:
            raise RepositoryError(f"SQLite repository error: {exc}") from exc


class SqliteFlowRepository(_Base):
    """Flow revisions: a changed source is a new revision, an unchanged one keeps its own."""

    def save(self, record: FlowRecord) -> None:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT revision, source, deleted FROM repo_flows "
                "WHERE tenant = ? AND namespace = ? AND id = ? ORDER BY revision DESC LIMIT 1",
                (record.tenant_id, record.namespace, record.id),
            ).fetchone()
            if row is not None and row[1] == record.source and not row[2]:
                conn.execute(
                    "UPDATE repo_flows SET disabled = ? "
                    "WHERE tenant = ? AND namespace = ? AND id = ? AND revision = ?",
                    (int(record.disabled), record.tenant_id, record.namespace, record.id, row[0]),
                )
                return
            revision = max(record.revision, (row[0] + 1) if row is not None else 1)
            conn.execute(
                "INSERT OR REPLACE INTO repo_flows "
                "(tenant, namespace, id, revision, source, updated, deleted, disabled) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.tenant_id,
                    record.namespace,
                    record.id,
                    revision,
                    record.source,
                    iso(record.updated),
                    int(record.deleted),
                    int(record.disabled),
                ),
            )

    @staticmethod
    def _record(row: tuple[object, ...]) -> FlowRecord:
        return FlowRecord(
            tenant_id=str(row[0]),
            namespace=str(row[1]),
            id=str(row[2]),
            revision=int(row[3]),  # type: ignore[call-overload]
            source=str(row[4]),
            updated=datetime.fromisoformat(str(row[5])),
            deleted=bool(row[6]),
            disabled=bool(row[7]),
        )

    _COLUMNS = "tenant, namespace, id, revision, source, updated, deleted, disabled"

    def get(
        self, tenant_id: str, namespace: str, flow_id: str, revision: int | None = None
    ) -> FlowRecord | None:
        if revision is None:
            rows = self._read(
                f"SELECT {self._COLUMNS} FROM repo_flows WHERE tenant = ? AND namespace = ? "
                "AND id = ? ORDER BY revision DESC LIMIT 1",
                (tenant_id, namespace, flow_id),
            )
            if not rows or rows[0][6]:
                return None
        else:
            rows = self._read(
                f"SELECT {self._COLUMNS} FROM repo_flows WHERE tenant = ? AND namespace = ? "
                "AND id = ? AND revision = ?",
                (tenant_id, namespace, flow_id, revision),
            )
            if not rows:
                return None
        return self._record(rows[0])

    def tenants(self) -> list[str]:
        return [str(r[0]) for r in self._read("SELECT DISTINCT tenant FROM repo_flows", ())]

    def revisions(self, tenant_id: str, namespace: str, flow_id: str) -> list[FlowRecord]:
        rows = self._read(
            f"SELECT {self._COLUMNS} FROM repo_flows WHERE tenant = ? AND namespace = ? "
            "AND id = ? ORDER BY revision",
            (tenant_id, namespace, flow_id),
        )
        return [self._record(r) for r in rows]

    def find(
        self, tenant_id: str, namespace: str | None = None, q: str | None = None
    ) -> list[FlowRecord]:
        sql = (
            f"SELECT {self._COLUMNS} FROM repo_flows f WHERE tenant = ? AND revision = ("
            "SELECT MAX(revision) FROM repo_flows g WHERE g.tenant = f.tenant "
            "AND g.namespace = f.namespace AND g.id = f.id) AND deleted = 0"
        )
        params: list[object] = [tenant_id]
        if namespace:
            sql += " AND (namespace = ? OR namespace LIKE ? ESCAPE '\\')"
            params += [namespace, _like_prefix(namespace) + ".%"]
        if q:
            sql += " AND (id LIKE ? ESCAPE '\\' OR namespace LIKE ? ESCAPE '\\')"
            params += [_like_contains(q)] * 2
        sql += " ORDER BY namespace, id"
        return [self._record(r) for r in self._read(sql, params)]

    def delete(self, tenant_id: str, namespace: str, flow_id: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE repo_flows SET deleted = 1 WHERE tenant = ? AND namespace = ? AND id = ? "
                "AND revision = (SELECT MAX(revision) FROM repo_flows WHERE tenant = ? "
                "AND namespace = ? AND id = ?)",
                (tenant_id, namespace, flow_id) * 2,
            )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like_prefix(text: str) -> str:
    return _escape_like(text)


def _like_contains(text: str) -> str:
    return "%" + _escape_like(text) + "%"


class SqliteExecutionRepository(_Base):
    """Executions versioned by ``sequence``: an older snapshot never overwrites a newer one."""

    def save(self, execution: Execution) -> bool:
        return self.save_many([execution]) == 1

    def save_many(self, executions: Sequence[Execution]) -> int:
        """Bulk save in one transaction; returns how many snapshots were written."""
        written = 0
        with self._tx() as conn:
            for execution in executions:
                if self._write(conn, execution):
                    written += 1
        return written

    def save_json_many(self, items: Sequence[tuple[ExecutionHead, bytes]]) -> int:
        """``save_many`` of executions given as their JSON (stored as is) and its indexed
        fields, for the indexer, which would otherwise decode and re-encode every snapshot."""
        written = 0
        with self._tx() as conn:
            for head, body in items:
                if self._write(conn, head, body.decode()):
                    written += 1
        return written

    @staticmethod
    def _write(
        conn: sqlite3.Connection, execution: Execution | ExecutionHead, body: str | None = None
    ) -> bool:
        tenant = _tenant(execution.tenant_id)
        labels = execution.labels
        cur = conn.execute(
            "INSERT INTO repo_executions (tenant, id, namespace, flow_id, state, start_date, "
            "end_date, sequence, parent_id, search_text, deleted, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (tenant, id) DO UPDATE SET namespace = excluded.namespace, "
            "flow_id = excluded.flow_id, state = excluded.state, "
            "start_date = excluded.start_date, end_date = excluded.end_date, "
            "sequence = excluded.sequence, parent_id = excluded.parent_id, "
            "search_text = excluded.search_text, body = excluded.body "
            "WHERE excluded.sequence >= repo_executions.sequence",
            (
                tenant,
                execution.id,
                execution.namespace,
                execution.flow_id,
                execution.state.current.value,
                iso(execution.state.start_date),
                iso(execution.state.end_date),
                execution.sequence,
                execution.parent_id,
                search_text(execution),
                int(execution.deleted),
                body if body is not None else execution.to_json().decode(),
            ),
        )
        if cur.rowcount != 1:
            return False
        conn.execute(
            "DELETE FROM repo_execution_labels WHERE tenant = ? AND execution_id = ?",
            (tenant, execution.id),
        )
        conn.executemany(
            "INSERT INTO repo_execution_labels (tenant, execution_id, key, value) "
            "VALUES (?, ?, ?, ?)",
            [(tenant, execution.id, label.key, label.value) for label in labels],
        )
        return True

    def get(self, tenant_id: str, execution_id: str) -> Execution | None:
        rows = self._read(
            "SELECT body FROM repo_executions WHERE tenant = ? AND id = ? AND deleted = 0",
            (_tenant(tenant_id), execution_id),
        )
        return Execution.model_validate_json(str(rows[0][0])) if rows else None

    @staticmethod
    def _where(query: ExecutionQuery) -> tuple[str, list[object]]:
        """The WHERE clause of a query's filters (not its paging) and its parameters."""
        where = ["tenant = ?", "deleted = 0"]
        params: list[object] = [_tenant(query.tenant_id)]
        if query.namespace:
            where.append("(namespace = ? OR namespace LIKE ? ESCAPE '\\')")
            params += [query.namespace, _like_prefix(query.namespace) + ".%"]
        if query.flow_id:
            where.append("flow_id = ?")
            params.append(query.flow_id)
        if query.states:
            where.append(f"state IN ({','.join('?' * len(query.states))})")
            params += [str(s) for s in query.states]
        for key, value in query.labels.items():
            where.append(
                "EXISTS (SELECT 1 FROM repo_execution_labels l WHERE l.tenant = "
                "repo_executions.tenant AND l.execution_id = repo_executions.id "
                "AND l.key = ? AND l.value = ?)"
            )
            params += [key, value]
        if query.start_date is not None:
            where.append("start_date >= ?")
            params.append(iso(query.start_date))
        if query.end_date is not None:
            where.append("start_date <= ?")
            params.append(iso(query.end_date))
        if query.q:
            where.append("search_text LIKE ? ESCAPE '\\'")
            params.append(_like_contains(query.q.lower()))
        if query.parent_id:
            where.append("parent_id = ?")
            params.append(query.parent_id)
        return " AND ".join(where), params

    @staticmethod
    def _after(query: ExecutionQuery, cursor: str) -> tuple[str, list[object]]:
        """Rows after the cursor's (start date, id) in the query's order. SQLite sorts a missing
        start date (NULL) first, so it comes last in descending order and first in ascending."""
        start, last_id = decode_cursor(cursor, query.sort_desc, 2)
        if not isinstance(last_id, str) or not (start is None or isinstance(start, str)):
            raise QueryError([Problem("after", "not a cursor returned by a previous page")])
        if query.sort_desc:
            if start is None:
                return "(start_date IS NULL AND id < ?)", [last_id]
            return (
                "(start_date < ? OR (start_date = ? AND id < ?) OR start_date IS NULL)",
                [start, start, last_id],
            )
        if start is None:
            return "(start_date IS NOT NULL OR id > ?)", [last_id]
        return "(start_date > ? OR (start_date = ? AND id > ?))", [start, start, last_id]

    def search(self, query: ExecutionQuery) -> Page[Execution]:
        check_page(query)
        clause, params = self._where(query)
        total_rows = self._read(f"SELECT COUNT(*) FROM repo_executions WHERE {clause}", params)
        total = int(total_rows[0][0])  # type: ignore[call-overload]
        offset = (query.page - 1) * query.size
        if query.after is not None:
            after, after_params = self._after(query, query.after)
            clause, params, offset = f"{clause} AND {after}", [*params, *after_params], 0
        order = "DESC" if query.sort_desc else "ASC"
        # one row more than the page says whether a next page exists
        rows = self._read(
            f"SELECT start_date, id, body FROM repo_executions WHERE {clause} "
            f"ORDER BY start_date {order}, id {order} LIMIT ? OFFSET ?",
            [*params, query.size + 1, offset],
        )
        more = len(rows) > query.size
        rows = rows[: query.size]
        cursor = encode_cursor([rows[-1][0], rows[-1][1]], query.sort_desc) if more else None
        return Page([Execution.model_validate_json(str(r[2])) for r in rows], total, cursor)

    def count_by_state(self, query: ExecutionQuery) -> dict[State, int]:
        clause, params = self._where(query)
        rows = self._read(
            f"SELECT state, COUNT(*) FROM repo_executions WHERE {clause} GROUP BY state", params
        )
        return {State(str(r[0])): int(r[1]) for r in rows}  # type: ignore[call-overload]

    # Exact microseconds between two stored dates (fixed width: micros at characters 21-26);
    # julianday() would round them.
    _DURATION_US = (
        "((strftime('%s', end_date) - strftime('%s', start_date)) * 1000000 "
        "+ CAST(substr(end_date, 21, 6) AS INTEGER) - CAST(substr(start_date, 21, 6) AS INTEGER))"
    )

    def histogram(self, query: ExecutionQuery, interval: Interval) -> list[StateBucket]:
        check_histogram(query, interval)
        clause, params = self._where(query)
        width = 10 if interval is Interval.DAY else 13  # 2024-05-01 / 2024-05-01T12
        rows = self._read(
            f"SELECT bucket, state, COUNT(*), COUNT(us), SUM(us), MIN(us), MAX(us) FROM ("
            f"SELECT substr(start_date, 1, {width}) AS bucket, state, "
            f"CASE WHEN end_date IS NOT NULL THEN {self._DURATION_US} END AS us "
            f"FROM repo_executions WHERE {clause} AND start_date IS NOT NULL"
            ") GROUP BY bucket, state ORDER BY bucket, state",
            params,
        )
        suffix = "T00:00:00+00:00" if interval is Interval.DAY else ":00:00+00:00"
        buckets = []
        for bucket, state, count, ended, total_us, min_us, max_us in rows:
            durations = (
                Durations(
                    int(ended),  # type: ignore[call-overload]
                    int(total_us) / 1e6,  # type: ignore[call-overload]
                    int(min_us) / 1e6,  # type: ignore[call-overload]
                    int(max_us) / 1e6,  # type: ignore[call-overload]
                )
                if ended
                else Durations()
            )
            buckets.append(
                StateBucket(
                    start=datetime.fromisoformat(str(bucket) + suffix),
                    state=State(str(state)),
                    count=int(count),  # type: ignore[call-overload]
                    durations=durations,
                )
            )
        return buckets

    def count_by_flow(self, query: ExecutionQuery) -> list[FlowStateCount]:
        clause, params = self._where(query)
        rows = self._read(
            "WITH matching AS (SELECT namespace, flow_id, state FROM repo_executions "
            f"WHERE {clause}), "
            "top AS (SELECT namespace, flow_id FROM matching GROUP BY namespace, flow_id "
            "ORDER BY COUNT(*) DESC, namespace, flow_id LIMIT ?) "
            "SELECT namespace, flow_id, state, COUNT(*) FROM matching "
            "JOIN top USING (namespace, flow_id) "
            "GROUP BY namespace, flow_id, state ORDER BY namespace, flow_id, state",
            [*params, MAX_FLOW_GROUPS],
        )
        return [
            FlowStateCount(str(r[0]), str(r[1]), State(str(r[2])), int(r[3]))  # type: ignore[call-overload]
            for r in rows
        ]

    def duration_percentiles(
        self, query: ExecutionQuery, percents: Sequence[float] = DEFAULT_PERCENTS
    ) -> list[FlowDurations]:
        wanted = check_percents(percents)
        clause, params = self._where(query)
        # per flow, only the rows at the two ranks around each percent leave SQLite
        ranks = " OR ".join(
            f"i = CAST({p / 100} * (n - 1) AS INTEGER) "
            f"OR i = CAST({p / 100} * (n - 1) AS INTEGER) + 1"
            for p in wanted
        )
        rows = self._read(
            "WITH ended AS (SELECT namespace, flow_id, "
            f"{self._DURATION_US} AS us FROM repo_executions WHERE {clause} "
            "AND end_date IS NOT NULL AND start_date IS NOT NULL), "
            "top AS (SELECT namespace, flow_id FROM ended GROUP BY namespace, flow_id "
            "ORDER BY COUNT(*) DESC, namespace, flow_id LIMIT ?), "
            "ranked AS (SELECT namespace, flow_id, us, ROW_NUMBER() OVER "
            "(PARTITION BY namespace, flow_id ORDER BY us) - 1 AS i, "
            "COUNT(*) OVER (PARTITION BY namespace, flow_id) AS n "
            "FROM ended JOIN top USING (namespace, flow_id)) "
            f"SELECT namespace, flow_id, n, i, us FROM ranked WHERE {ranks} "
            "ORDER BY namespace, flow_id, i",
            [*params, MAX_FLOW_GROUPS],
        )
        flows: dict[tuple[str, str], tuple[int, dict[int, float]]] = {}
        for namespace, flow_id, n, i, us in rows:
            key = (str(namespace), str(flow_id))
            flows.setdefault(key, (int(n), {}))[1][int(i)] = int(us) / 1e6  # type: ignore[call-overload]
        found = []
        for (namespace, flow_id), (count, values) in flows.items():
            percentiles = {}
            for p in wanted:
                rank = p / 100 * (count - 1)
                low = int(rank)
                high = min(low + 1, count - 1)
                percentiles[p] = values[low] + (values[high] - values[low]) * (rank - low)
            found.append(FlowDurations(namespace, flow_id, count, percentiles))
        return found

    def delete(self, tenant_id: str, execution_id: str) -> None:
        # a tombstone, so that a late snapshot from the indexer cannot bring it back
        with self._tx() as conn:
            conn.execute(
                "UPDATE repo_executions SET deleted = 1 WHERE tenant = ? AND id = ?",
                (_tenant(tenant_id), execution_id),
            )


class SqliteLogRepository(_Base):
    """Log lines, deduplicated on their content so that a redelivered batch adds nothing."""

    def save_many(self, logs: Sequence[LogEntry]) -> None:
        rows = []
        for entry in logs:
            body = entry.to_json().decode()
            rows.append(
                (
                    _hash(body),
                    _tenant(entry.tenant_id),
                    entry.execution_id,
                    entry.task_run_id,
                    level_number(entry.level),
                    iso(entry.timestamp),
                    body,
                    entry.namespace,
                    entry.flow_id,
                    entry.task_id,
                )
            )
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO repo_logs (hash, tenant, execution_id, task_run_id, "
                "level, timestamp, body, namespace, flow_id, task_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def find(
        self,
        tenant_id: str,
        execution_id: str,
        task_run_id: str | None = None,
        min_level: str | None = None,
    ) -> list[LogEntry]:
        sql = "SELECT body FROM repo_logs WHERE tenant = ? AND execution_id = ?"
        params: list[object] = [_tenant(tenant_id), execution_id]
        if task_run_id:
            sql += " AND task_run_id = ?"
            params.append(task_run_id)
        if min_level:
            sql += " AND level >= ?"
            params.append(level_number(min_level))
        sql += " ORDER BY timestamp, rowid"
        return [LogEntry.model_validate_json(str(r[0])) for r in self._read(sql, params)]

    def search(self, query: LogQuery) -> Page[LogEntry]:
        check_page(query)
        where = ["tenant = ?"]
        params: list[object] = [_tenant(query.tenant_id)]
        if query.namespace:
            where.append("(namespace = ? OR namespace LIKE ? ESCAPE '\\')")
            params += [query.namespace, _like_prefix(query.namespace) + ".%"]
        for column, value in (
            ("flow_id", query.flow_id),
            ("execution_id", query.execution_id),
            ("task_id", query.task_id),
        ):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if query.min_level:
            where.append("level >= ?")
            params.append(level_number(query.min_level))
        if query.start_date is not None:
            where.append("timestamp >= ?")
            params.append(iso(query.start_date))
        if query.end_date is not None:
            where.append("timestamp <= ?")
            params.append(iso(query.end_date))
        if query.q:
            # LIKE is case-insensitive for ASCII; the message is a JSON string in the body
            where.append("json_extract(body, '$.message') LIKE ? ESCAPE '\\'")
            params.append(_like_contains(query.q))
        clause = " AND ".join(where)
        total = int(self._read(f"SELECT COUNT(*) FROM repo_logs WHERE {clause}", params)[0][0])  # type: ignore[call-overload]
        order = "DESC" if query.sort_desc else "ASC"
        offset = (query.page - 1) * query.size
        if query.after is not None:
            stamp, row = decode_cursor(query.after, query.sort_desc, 2)
            if not isinstance(stamp, str) or not isinstance(row, int):
                raise QueryError([Problem("after", "not a cursor returned by a previous page")])
            op = "<" if query.sort_desc else ">"
            clause += f" AND (timestamp {op} ? OR (timestamp = ? AND rowid {op} ?))"
            params += [stamp, stamp, row]
            offset = 0
        rows = self._read(
            f"SELECT timestamp, rowid, body FROM repo_logs WHERE {clause} "
            f"ORDER BY timestamp {order}, rowid {order} LIMIT ? OFFSET ?",
            [*params, query.size + 1, offset],
        )
        more = len(rows) > query.size
        rows = rows[: query.size]
        cursor = encode_cursor([rows[-1][0], rows[-1][1]], query.sort_desc) if more else None
        return Page([LogEntry.model_validate_json(str(r[2])) for r in rows], total, cursor)

    def delete(self, purge: LogPurge) -> int:
        where = ["tenant = ?"]
        params: list[object] = [_tenant(purge.tenant_id)]
        if purge.namespace and purge.flow_id:
            where.append("namespace = ?")
            params.append(purge.namespace)
        elif purge.namespace:
            where.append("(namespace = ? OR namespace LIKE ? ESCAPE '\\')")
            params += [purge.namespace, _like_prefix(purge.namespace) + ".%"]
        for column, value in (("flow_id", purge.flow_id), ("execution_id", purge.execution_id)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if purge.levels:
            where.append(f"level IN ({','.join('?' * len(purge.levels))})")
            params += [level_number(level) for level in purge.levels]
        if purge.start_date is not None:
            where.append("timestamp >= ?")
            params.append(iso(purge.start_date))
        if purge.end_date is not None:
            where.append("timestamp <= ?")
            params.append(iso(purge.end_date))
        with self._tx() as conn:
            cursor = conn.execute(f"DELETE FROM repo_logs WHERE {' AND '.join(where)}", params)
            return int(cursor.rowcount)


class SqliteMetricRepository(_Base):
    def save_many(self, metrics: Sequence[MetricEntry]) -> None:
        rows = []
        for entry in metrics:
            body = entry.to_json().decode()
            rows.append(
                (
                    _hash(body),
                    _tenant(entry.tenant_id),
                    entry.execution_id,
                    iso(entry.timestamp),
                    body,
                )
            )
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO repo_metrics (hash, tenant, execution_id, timestamp, body) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def find(self, tenant_id: str, execution_id: str) -> list[MetricEntry]:
        rows = self._read(
            "SELECT body FROM repo_metrics WHERE tenant = ? AND execution_id = ? "
            "ORDER BY timestamp, rowid",
            (_tenant(tenant_id), execution_id),
        )
        return [MetricEntry.model_validate_json(str(r[0])) for r in rows]

    def delete(self, tenant_id: str, execution_id: str) -> int:
        with self._tx() as conn:
            cursor = conn.execute(
                "DELETE FROM repo_metrics WHERE tenant = ? AND execution_id = ?",
                (_tenant(tenant_id), execution_id),
            )
            return int(cursor.rowcount)


class SqliteWorkerRepository(_Base):
    """The last heartbeat of each worker (a newer heartbeat replaces an older one)."""

    def save(self, heartbeat: WorkerHeartbeat) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO repo_workers (worker_id, date, body) VALUES (?, ?, ?) "
                "ON CONFLICT (worker_id) DO UPDATE SET date = excluded.date, body = excluded.body "
                "WHERE excluded.date >= repo_workers.date",
                (heartbeat.worker_id, iso(heartbeat.date), heartbeat.to_json().decode()),
            )

    def all(self) -> list[WorkerHeartbeat]:
        rows = self._read("SELECT body FROM repo_workers ORDER BY worker_id")
        return [WorkerHeartbeat.model_validate_json(str(r[0])) for r in rows]


class SqliteTriggerRepository(_Base):
    def save_many(self, states: Sequence[TriggerState]) -> None:
        rows = [
            (
                s.uid,
                _tenant(s.tenant_id),
                s.namespace,
                s.flow_id,
                iso(s.date),
                s.to_json().decode(),
            )
            for s in states
        ]
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO repo_triggers (uid, tenant, namespace, flow_id, date, body) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO UPDATE SET date = excluded.date, "
                "body = excluded.body WHERE excluded.date IS NULL OR repo_triggers.date IS NULL "
                "OR excluded.date >= repo_triggers.date",
                rows,
            )

    def delete_many(self, uids: Sequence[str]) -> None:
        with self._tx() as conn:
            conn.executemany("DELETE FROM repo_triggers WHERE uid = ?", [(u,) for u in uids])

    def find(
        self, tenant_id: str, namespace: str | None = None, flow_id: str | None = None
    ) -> list[TriggerState]:
        sql = "SELECT body FROM repo_triggers WHERE tenant = ?"
        params: list[object] = [_tenant(tenant_id)]
        if namespace:
            sql += " AND (namespace = ? OR namespace LIKE ? ESCAPE '\\')"
            params += [namespace, _like_prefix(namespace) + ".%"]
        if flow_id:
            sql += " AND flow_id = ?"
            params.append(flow_id)
        sql += " ORDER BY namespace, flow_id, uid"
        return [TriggerState.model_validate_json(str(r[0])) for r in self._read(sql, params)]


def sqlite_repositories(db: SqliteDatabase) -> Repositories:
    """Every repository on one SQLite database; creates the tables if needed."""
    try:
        db.executescript(_SCHEMA)
        _migrate_logs(db)
    except sqlite3.Error as exc:
        raise RepositoryError(f"cannot create the repository tables in {db.path}: {exc}") from exc
    return Repositories(
        flows=SqliteFlowRepository(db),
        executions=SqliteExecutionRepository(db),
        logs=SqliteLogRepository(db),
        metrics=SqliteMetricRepository(db),
        workers=SqliteWorkerRepository(db),
        triggers=SqliteTriggerRepository(db),
    )
