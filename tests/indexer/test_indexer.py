"""The indexer: queue → repository in bulk, commit after write, retries, bad records skipped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.models.messages import LogEntry, MetricEntry, WorkerHeartbeat
from common.models.state import State
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.base import Repositories
from common.repository.sqlite import sqlite_repositories
from indexer import Indexer
from tests.contracts.repository import make_execution

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        pause.wait(0.01)


@pytest.fixture(params=["sqlite", pytest.param("elasticsearch", marks=pytest.mark.elasticsearch)])
def env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[SqliteQueue, Repositories]]:
    """An embedded queue, and the repositories on SQLite or on Elasticsearch (indices of this
    test's own, refreshed on Elasticsearch's own schedule: the tests wait for what they read)."""
    db = SqliteDatabase(str(tmp_path / "lanner.db"))
    queue = SqliteQueue(db)
    if request.param == "elasticsearch":
        from common.repository.elasticsearch import elasticsearch_repositories
        from common.repository.elasticsearch_client import create_client
        from tests.infra.elasticsearch import drop_indices

        client = create_client(request.getfixturevalue("elasticsearch_url"))
        prefix = request.getfixturevalue("unique_name") + "_"
        yield queue, elasticsearch_repositories(client, prefix)
        drop_indices(client, prefix)
        client.close()
    else:
        yield queue, sqlite_repositories(db)
    queue.close()
    db.close()


def emit_sample(queue: SqliteQueue) -> None:
    queue.emit("executions", "e1", make_execution("e1", state=State.RUNNING, sequence=1).to_json())
    queue.emit("executions", "e1", make_execution("e1", state=State.SUCCESS, sequence=3).to_json())
    queue.emit("executions", "e1", make_execution("e1", state=State.RUNNING, sequence=2).to_json())
    queue.emit("executions", "bad", b"{not json")
    queue.emit("executions", "tomb", None)
    log = LogEntry(
        namespace="company.team", flow_id="hello", execution_id="e1", timestamp=NOW, message="hi"
    )
    queue.emit("logs", "e1", log.to_json())
    queue.emit("logs", "e1", b'{"unexpected": true}')
    metric = MetricEntry(
        namespace="company.team",
        flow_id="hello",
        execution_id="e1",
        name="n",
        value=1,
        timestamp=NOW,
    )
    queue.emit("metrics", "e1", metric.to_json())
    beat = WorkerHeartbeat(worker_id="w1", hostname="h", threads=2, running=0, date=NOW)
    queue.emit("workers", "w1", beat.to_json())


def indexed(repositories: Repositories) -> bool:
    execution = repositories.executions.get("main", "e1")
    return (
        execution is not None
        and execution.state.current == State.SUCCESS
        and len(repositories.logs.find("main", "e1")) == 1
        and len(repositories.metrics.find("main", "e1")) == 1
        and len(repositories.workers.all()) == 1
    )


def test_copies_every_topic_and_skips_bad_records(
    env: tuple[SqliteQueue, Repositories],
) -> None:
    queue, repositories = env
    emit_sample(queue)
    indexer = Indexer(queue, repositories, poll_timeout=0.05)
    indexer.start()
    try:
        wait_for(lambda: indexed(repositories) and indexer.skipped == 2)
        assert indexer.running
        # keeps going after bad records
        later = make_execution("e2", state=State.CREATED).to_json()
        queue.emit("executions", "e2", later)
        wait_for(lambda: repositories.executions.get("main", "e2") is not None)
    finally:
        indexer.stop()
    assert not indexer.running


def test_the_highest_sequence_wins_across_batches(env: tuple[SqliteQueue, Repositories]) -> None:
    queue, repositories = env
    indexer = Indexer(queue, repositories, batch_size=1, poll_timeout=0.05)
    emit_sample(queue)
    indexer.start()
    try:
        wait_for(lambda: indexed(repositories) and indexer.skipped == 2)
    finally:
        indexer.stop()
    execution = repositories.executions.get("main", "e1")
    assert execution is not None and execution.sequence == 3


class _Flaky:
    """Wraps a repository: the first ``failures`` writes raise."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in ("save", "save_many", "save_json_many"):
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls <= self.failures:
                raise RuntimeError("repository down")
            return attr(*args, **kwargs)

        return write


def test_a_replay_from_the_beginning_moves_nothing_backwards_and_doubles_nothing(
    env: tuple[SqliteQueue, Repositories],
) -> None:
    """A second indexer group reads every topic again from the start (a replay) while newer
    snapshots than the replayed ones are stored: no execution goes back, no log is doubled."""
    from common.repository.base import ExecutionQuery, LogQuery

    queue, repositories = env
    states = [State.CREATED, State.RUNNING, State.SUCCESS]
    for i in range(20):
        for seq, state in enumerate(states):
            execution = make_execution(f"r{i}", state=state, sequence=seq)
            queue.emit("executions", execution.id, execution.to_json())
        for n in range(5):
            entry = LogEntry(
                namespace="company.team",
                flow_id="hello",
                execution_id=f"r{i}",
                timestamp=NOW,
                message=f"line {n}",
            )
            queue.emit("logs", f"r{i}", entry.to_json())

    def settled() -> bool:
        found = repositories.executions.search(ExecutionQuery(states=[State.SUCCESS], size=100))
        logs = repositories.logs.search(LogQuery(size=1))
        return found.total == 20 and logs.total == 100

    first = Indexer(queue, repositories, batch_size=7, poll_timeout=0.05)
    first.start()
    try:
        wait_for(settled, timeout=30)
    finally:
        first.stop()
    replay = Indexer(queue, repositories, batch_size=3, poll_timeout=0.05, group="replay")
    replay.start()
    try:
        wait_for(lambda: replay.indexed == 20 * 3 + 20 * 5, timeout=30)
    finally:
        replay.stop()
    assert settled()  # still every execution SUCCESS and 100 logs, once the replay is searchable
    for i in range(20):
        replayed = repositories.executions.get("main", f"r{i}")
        assert replayed is not None and replayed.state.current == State.SUCCESS
        assert len(repositories.logs.find("main", f"r{i}")) == 5


def test_failed_writes_are_retried(env: tuple[SqliteQueue, Repositories]) -> None:
    queue, repositories = env
    flaky = Repositories(
        flows=repositories.flows,
        executions=_Flaky(repositories.executions, failures=3),  # type: ignore[arg-type]
        logs=repositories.logs,
        metrics=repositories.metrics,
        workers=repositories.workers,
        triggers=repositories.triggers,
    )
    emit_sample(queue)
    indexer = Indexer(queue, flaky, poll_timeout=0.05, initial_backoff=0.01, max_backoff=0.02)
    indexer.start()
    try:
        wait_for(lambda: indexed(repositories))
    finally:
        indexer.stop()
    assert indexer.failures == 3


def test_offsets_are_committed_only_after_a_successful_write(
    env: tuple[SqliteQueue, Repositories],
) -> None:
    queue, repositories = env
    down = Repositories(
        flows=repositories.flows,
        executions=_Flaky(repositories.executions, failures=10**9),  # type: ignore[arg-type]
        logs=repositories.logs,
        metrics=repositories.metrics,
        workers=repositories.workers,
        triggers=repositories.triggers,
    )
    emit_sample(queue)
    failing = Indexer(queue, down, poll_timeout=0.05, initial_backoff=0.01, max_backoff=0.01)
    failing.start()
    wait_for(lambda: failing.failures >= 2)
    failing.stop()
    assert repositories.executions.get("main", "e1") is None
    # a new indexer of the same group reads the same records again: nothing was lost
    recovered = Indexer(queue, repositories, poll_timeout=0.05)
    recovered.start()
    try:
        wait_for(lambda: indexed(repositories))
    finally:
        recovered.stop()


def test_trigger_states_are_indexed_and_tombstones_remove_them(
    env: tuple[SqliteQueue, Repositories],
) -> None:
    from datetime import timedelta

    from common.models.trigger import TriggerState

    queue, repositories = env

    def state(trigger_id: str, minutes: int) -> TriggerState:
        return TriggerState(
            namespace="company.team",
            flow_id="hello",
            trigger_id=trigger_id,
            next_execution_date=NOW + timedelta(minutes=minutes + 1),
            last_execution_id=f"x{minutes}",
            date=NOW + timedelta(minutes=minutes),
        )

    for record in (state("daily", 0), state("daily", 2), state("hourly", 0)):
        queue.emit("triggers", record.uid, record.to_json())
    queue.emit("triggers", state("daily", 1).uid, state("daily", 1).to_json())  # late, older
    indexer = Indexer(queue, repositories, batch_size=1, poll_timeout=0.05)
    indexer.start()
    try:
        wait_for(lambda: len(repositories.triggers.find("main")) == 2)
        wait_for(lambda: indexer.indexed == 4)
        daily = repositories.triggers.find("main", "company", "hello")[0]
        assert (daily.trigger_id, daily.last_execution_id) == ("daily", "x2")
        queue.emit("triggers", state("hourly", 0).uid, None)
        wait_for(lambda: len(repositories.triggers.find("main")) == 1)
    finally:
        indexer.stop()
    assert repositories.triggers.find("other") == []


def _flow_event(revision: int, source: str, deleted: bool = False) -> bytes:
    import json

    return json.dumps(
        {
            "tenant": "main",
            "namespace": "company.team",
            "id": "hello",
            "revision": revision,
            "source": source,
            "deleted": deleted,
        }
    ).encode()


SOURCE = "id: hello\nnamespace: company.team\ntasks: []\n"


@pytest.mark.parametrize("batch_size", [1, 500])
def test_flows_are_indexed_and_a_stale_event_never_brings_an_older_source_back(
    env: tuple[SqliteQueue, Repositories], batch_size: int
) -> None:
    queue, repositories = env
    key = "main/company.team/hello"
    v1, v2 = SOURCE + "# v1\n", SOURCE + "disabled: true\n"
    queue.emit("flows", key, _flow_event(1, v1))
    queue.emit("flows", key, _flow_event(2, v2))
    queue.emit("flows", key, _flow_event(1, v1))  # late copy of an older revision
    indexer = Indexer(queue, repositories, batch_size=batch_size, poll_timeout=0.05)
    indexer.start()
    try:
        wait_for(lambda: indexer.indexed == 3)
        flow = repositories.flows.get("main", "company.team", "hello")
        assert flow is not None and (flow.revision, flow.source, flow.disabled) == (2, v2, True)
        assert [
            r.revision for r in repositories.flows.revisions("main", "company.team", "hello")
        ] == [1, 2]
        queue.emit("flows", key, _flow_event(2, v2, deleted=True))
        wait_for(lambda: repositories.flows.get("main", "company.team", "hello") is None)
        queue.emit("flows", key, _flow_event(3, v1))
        wait_for(lambda: repositories.flows.get("main", "company.team", "hello") is not None)
        queue.emit("flows", key, None)  # tombstone: deleted
        wait_for(lambda: repositories.flows.get("main", "company.team", "hello") is None)
    finally:
        indexer.stop()


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def _emit_logs(queue: SqliteQueue, count: int, prefix: str) -> None:
    for i in range(count):
        entry = LogEntry(
            namespace="company.team",
            flow_id="hello",
            execution_id=f"{prefix}{i}",
            timestamp=NOW,
            message=f"line {i}",
        )
        queue.emit("logs", f"{prefix}{i}", entry.to_json())


def test_bulks_are_cut_by_size_then_by_time(env: tuple[SqliteQueue, Repositories]) -> None:
    queue, repositories = env
    _emit_logs(queue, 25, "s")
    bulks_before = _sample("lanner_indexer_bulk_records_count")
    records_before = _sample("lanner_indexer_bulk_records_sum")
    # a linger no test waits for: only full bulks are written
    by_size = Indexer(queue, repositories, batch_size=10, linger=3600, poll_timeout=0.05)
    by_size.start()
    try:
        wait_for(lambda: by_size.indexed == 20)
    finally:
        by_size.stop()
    assert by_size.bulks == 2
    assert _sample("lanner_indexer_bulk_records_count") - bulks_before == 2
    assert _sample("lanner_indexer_bulk_records_sum") - records_before == 20
    assert repositories.logs.find("main", "s24") == []  # the last 5 wait in a bulk never written
    # the same group resumes after the committed bulks: the 5 left go in one bulk once the
    # first of them waited the linger
    by_time = Indexer(queue, repositories, batch_size=1000, linger=0.2, poll_timeout=0.05)
    by_time.start()
    try:
        wait_for(lambda: by_time.indexed == 5)
    finally:
        by_time.stop()
    assert by_time.bulks == 1
    assert _sample("lanner_indexer_bulk_records_sum") - records_before == 25
    assert _sample("lanner_indexer_bulk_seconds_count") >= 3
    wait_for(lambda: all(len(repositories.logs.find("main", f"s{i}")) == 1 for i in range(25)))


def test_retries_are_counted(env: tuple[SqliteQueue, Repositories]) -> None:
    queue, repositories = env
    flaky = Repositories(
        flows=repositories.flows,
        executions=repositories.executions,
        logs=_Flaky(repositories.logs, failures=3),  # type: ignore[arg-type]
        metrics=repositories.metrics,
        workers=repositories.workers,
        triggers=repositories.triggers,
    )
    _emit_logs(queue, 3, "r")
    retries_before = _sample("lanner_indexer_retries_total")
    indexer = Indexer(queue, flaky, poll_timeout=0.05, initial_backoff=0.01, max_backoff=0.02)
    indexer.start()
    try:
        wait_for(lambda: indexer.indexed == 3)
    finally:
        indexer.stop()
    assert _sample("lanner_indexer_retries_total") - retries_before == 3
    assert indexer.bulks == 1


def test_parallel_writes_copy_every_topic_and_retry_a_failed_entity(
    env: tuple[SqliteQueue, Repositories],
) -> None:
    """``parallel_writes`` (Elasticsearch): the entities of a bulk go in requests at once; one
    failing retries the whole bulk, the others being idempotent."""
    queue, repositories = env
    flaky = Repositories(
        flows=repositories.flows,
        executions=repositories.executions,
        logs=_Flaky(repositories.logs, failures=2),  # type: ignore[arg-type]
        metrics=repositories.metrics,
        workers=repositories.workers,
        triggers=repositories.triggers,
    )
    emit_sample(queue)
    indexer = Indexer(
        queue,
        flaky,
        poll_timeout=0.05,
        initial_backoff=0.01,
        max_backoff=0.02,
        parallel_writes=True,
    )
    indexer.start()
    try:
        wait_for(lambda: indexed(repositories) and indexer.skipped == 2)
    finally:
        indexer.stop()
    assert indexer.failures == 2
    assert len(repositories.logs.find("main", "e1")) == 1
