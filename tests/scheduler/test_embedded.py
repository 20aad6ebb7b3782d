"""The scheduler loop on a real SQLite queue with a fake clock."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from common.models.messages import EXECUTOR_INPUT, NewExecution
from common.models.trigger import TriggerState
from common.queue.base import EXECUTOR, FLOWS, TRIGGERS
from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.base import FlowRecord, Repositories
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from scheduler import Scheduler

T0 = datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)

FLOW = """
id: every-minute
namespace: company.team
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.date }}"
triggers:
  - id: minute
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * *"
"""


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        pause.wait(0.01)


class Env:
    def __init__(self, path: Path) -> None:
        self.db = SqliteDatabase(str(path))
        self.queue = SqliteQueue(self.db)
        self.repositories: Repositories = sqlite_repositories(self.db)
        self.clock = FakeClock(T0)
        self.settings = Settings(data_dir=path.parent)
        self.schedulers: list[Scheduler] = []

    def scheduler(self) -> Scheduler:
        scheduler = Scheduler(
            self.queue, self.repositories, self.settings, self.clock, tick_interval=0.01
        )
        self.schedulers.append(scheduler)
        scheduler.start()
        return scheduler

    def deploy(self, source: str, flow_id: str = "every-minute", revision: int = 1) -> None:
        record = FlowRecord(
            tenant_id="main",
            namespace="company.team",
            id=flow_id,
            revision=revision,
            source=source,
            updated=T0,
        )
        self.repositories.flows.save(record)
        event = {
            "source": source,
            "revision": revision,
            "tenant": "main",
            "namespace": "company.team",
            "id": flow_id,
            "deleted": False,
        }
        self.queue.emit(FLOWS, f"main/company.team/{flow_id}", json.dumps(event).encode())

    def records(self, topic: str) -> list[tuple[str, bytes | None]]:
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT key, value FROM queue_records WHERE topic = ? ORDER BY offset", (topic,)
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def executions(self) -> list[NewExecution]:
        out = []
        for key, value in self.records(EXECUTOR):
            assert value is not None
            event = EXECUTOR_INPUT.validate_json(value)
            assert isinstance(event, NewExecution) and key == event.execution_id
            out.append(event)
        return out

    def dates(self) -> list[str]:
        return [
            e.execution.trigger.variables["date"]
            for e in self.executions()
            if e.execution.trigger is not None
        ]

    def settle(self, scheduler: Scheduler) -> None:
        """Wait until the scheduler has ticked twice more at the current fake time."""
        seen = scheduler.ticks
        wait_for(lambda: scheduler.ticks >= seen + 2)

    def close(self) -> None:
        for scheduler in self.schedulers:
            scheduler.stop()
        self.queue.close()
        self.db.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    environment = Env(tmp_path / "lanner.db")
    yield environment
    environment.close()


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_every_minute_for_three_minutes_creates_three_executions(env: Env) -> None:
    emitted_before = _metric("lanner_scheduler_executions_emitted_total")
    scheduler = env.scheduler()
    env.deploy(FLOW)
    wait_for(lambda: len(scheduler.states()) == 1)
    for _ in range(3):
        env.clock.advance(timedelta(minutes=1))
        env.settle(scheduler)
    assert env.dates() == [
        "2024-05-01T10:01:00Z",
        "2024-05-01T10:02:00Z",
        "2024-05-01T10:03:00Z",
    ]
    executions = env.executions()
    assert all(e.execution.namespace == "company.team" for e in executions)
    assert all(e.execution.flow_id == "every-minute" for e in executions)
    assert len({e.execution_id for e in executions}) == 3
    # the trigger state is published for the indexer and the UI
    key, value = env.records(TRIGGERS)[-1]
    assert value is not None
    state = TriggerState.model_validate_json(value)
    assert key == state.uid == "main/company.team/every-minute/minute"
    assert state.next_execution_date == datetime(2024, 5, 1, 10, 4, tzinfo=UTC)
    assert state.last_execution_id == executions[-1].execution_id
    # and the operator sees the same on /metrics
    assert _metric("lanner_scheduler_executions_emitted_total") - emitted_before == 3
    assert _metric("lanner_scheduler_flows") == 1
    assert _metric("lanner_scheduler_loop_duration_seconds_count") >= scheduler.ticks


def test_restart_does_not_create_duplicates(env: Env) -> None:
    env.deploy(FLOW)
    first = env.scheduler()
    wait_for(lambda: len(first.states()) == 1)
    env.clock.advance(timedelta(minutes=2))
    wait_for(lambda: len(env.executions()) == 2)
    first.stop()
    second = env.scheduler()  # same database: states and flows offset are stored
    env.settle(second)
    assert len(env.executions()) == 2
    env.clock.advance(timedelta(minutes=1))
    wait_for(lambda: len(env.executions()) == 3)
    env.settle(second)
    assert env.dates() == [
        "2024-05-01T10:01:00Z",
        "2024-05-01T10:02:00Z",
        "2024-05-01T10:03:00Z",
    ]


def test_restart_after_downtime_recovers_missed_dates_once(env: Env) -> None:
    env.deploy(FLOW)
    first = env.scheduler()
    wait_for(lambda: len(first.states()) == 1)
    first.stop()
    env.clock.advance(timedelta(minutes=2))
    second = env.scheduler()
    wait_for(lambda: len(env.executions()) == 2)
    env.settle(second)
    assert env.dates() == ["2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"]


def test_backfill_from_five_minutes_ago_creates_the_five_past_executions(env: Env) -> None:
    start = (T0 - timedelta(minutes=5)).isoformat()
    source = FLOW + f'    backfill:\n      start: "{start}"\n'
    scheduler = env.scheduler()
    env.deploy(source)
    wait_for(lambda: len(env.executions()) == 5)
    env.settle(scheduler)
    assert env.dates() == [
        "2024-05-01T09:56:00Z",
        "2024-05-01T09:57:00Z",
        "2024-05-01T09:58:00Z",
        "2024-05-01T09:59:00Z",
        "2024-05-01T10:00:00Z",
    ]
    assert all(e.execution.schedule_date is not None for e in env.executions())


def test_disabled_trigger_creates_nothing(env: Env) -> None:
    scheduler = env.scheduler()
    env.deploy(FLOW + "    disabled: true\n")
    wait_for(lambda: len(scheduler.states()) == 1)
    env.clock.advance(timedelta(minutes=3))
    env.settle(scheduler)
    assert env.executions() == []


def test_flows_in_the_repository_are_scheduled_at_start_and_deletion_stops_them(
    env: Env,
) -> None:
    env.repositories.flows.save(
        FlowRecord(
            tenant_id="main",
            namespace="company.team",
            id="every-minute",
            revision=1,
            source=FLOW,
            updated=T0,
        )
    )
    scheduler = env.scheduler()
    wait_for(lambda: len(scheduler.states()) == 1)
    env.clock.advance(timedelta(minutes=1))
    wait_for(lambda: len(env.executions()) == 1)
    event = {"source": FLOW, "revision": 1, "tenant": "main", "deleted": True}
    env.queue.emit(FLOWS, "main/company.team/every-minute", json.dumps(event).encode())
    wait_for(lambda: scheduler.states() == {})
    assert env.records(TRIGGERS)[-1] == ("main/company.team/every-minute/minute", None)
    env.clock.advance(timedelta(minutes=2))
    env.settle(scheduler)
    assert len(env.executions()) == 1


def test_a_new_revision_replaces_the_cron(env: Env) -> None:
    scheduler = env.scheduler()
    env.deploy(FLOW)
    wait_for(lambda: len(scheduler.states()) == 1)
    env.deploy(FLOW.replace('"* * * * *"', '"0 0 1 * *"'), revision=2)
    wait_for(
        lambda: all(
            s.next_execution_date == datetime(2024, 6, 1, tzinfo=UTC)
            for s in scheduler.states().values()
        )
    )
    env.clock.advance(timedelta(minutes=3))
    env.settle(scheduler)
    assert env.executions() == []
