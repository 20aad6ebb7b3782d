"""Users' trigger requests (enable, disable, unlock, backfill) applied by the scheduler loop, on a
real SQLite queue with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.models.trigger import (
    BackfillRequest,
    TriggerState,
    is_request_key,
)
from common.queue.base import TRIGGERS
from common.trigger_requests import new_request, send_request
from scheduler import Scheduler
from scheduler._requests import apply_request
from tests.scheduler.test_embedded import FLOW, T0, Env, wait_for

UID = "main/company.team/every-minute/minute"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    environment = Env(tmp_path / "lanner.db")
    yield environment
    environment.close()


def ask(env: Env, trigger: str = "minute", flow: str = "every-minute", **changes: Any) -> str:
    request = new_request("main", "company.team", flow, trigger, env.clock(), **changes)
    send_request(env.queue, request)
    return request.id


def applied(scheduler: Scheduler, request_id: str) -> bool:
    state = scheduler.states().get(UID)
    return state is not None and request_id in state.applied_requests


def done(scheduler: Scheduler, env: Env, **changes: Any) -> None:
    """Send a request and wait until the scheduler has applied it."""
    request_id = ask(env, **changes)
    wait_for(lambda: applied(scheduler, request_id))


def test_disable_stops_the_dates_and_enable_skips_those_missed(env: Env) -> None:
    scheduler = env.scheduler()
    env.deploy(FLOW)
    wait_for(lambda: UID in scheduler.states())
    env.clock.advance(timedelta(minutes=1))
    wait_for(lambda: len(env.executions()) == 1)
    done(scheduler, env, disabled=True)
    assert scheduler.states()[UID].disabled
    env.clock.advance(timedelta(minutes=3))
    env.settle(scheduler)
    assert len(env.executions()) == 1
    done(scheduler, env, disabled=False)
    assert not scheduler.states()[UID].disabled
    env.clock.advance(timedelta(minutes=1))
    wait_for(lambda: len(env.executions()) == 2)
    env.settle(scheduler)
    # 10:01 before, 10:05 after: 10:02 to 10:04 passed while disabled and never fire
    assert env.dates() == ["2024-05-01T10:01:00Z", "2024-05-01T10:05:00Z"]
    # requests leave the topic: a tombstone follows each, and the indexer never sees one as a state
    requests = [(k, v) for k, v in env.records(TRIGGERS) if is_request_key(k)]
    assert len(requests) == 4 and [v is None for _, v in requests].count(True) == 2


def test_backfill_create_pause_unpause_delete(env: Env) -> None:
    scheduler = env.scheduler()
    env.deploy(FLOW)
    wait_for(lambda: UID in scheduler.states())
    start = T0 - timedelta(minutes=10)  # 09:50:30 -> dates 09:51 to 10:00
    backfill = BackfillRequest(start=start, end=T0, labels={"kind": "backfill"})
    done(scheduler, env, backfill_action="CREATE", backfill=backfill)
    wait_for(lambda: len(env.executions()) >= 3)
    done(scheduler, env, backfill_action="PAUSE")
    state = scheduler.states()[UID]
    assert state.backfill is not None and state.backfill.paused
    paused_at = len(env.executions())
    env.settle(scheduler)
    assert len(env.executions()) == paused_at
    done(scheduler, env, backfill_action="UNPAUSE")
    wait_for(lambda: scheduler.states()[UID].backfill is None)  # complete
    dates = env.dates()
    assert dates == [f"2024-05-01T09:{m:02d}:00Z" for m in range(51, 60)] + ["2024-05-01T10:00:00Z"]
    assert all(e.execution.label_map().get("kind") == "backfill" for e in env.executions())
    # a new backfill, deleted before it ends
    long = BackfillRequest(start=T0 - timedelta(days=30), end=T0)
    done(scheduler, env, backfill_action="CREATE", backfill=long)
    done(scheduler, env, backfill_action="DELETE")
    assert scheduler.states()[UID].backfill is None
    created = len(env.executions())
    env.settle(scheduler)
    assert len(env.executions()) == created


def test_a_request_for_an_unknown_trigger_is_dropped_with_a_log(env: Env) -> None:
    scheduler = env.scheduler()
    env.deploy(FLOW)
    wait_for(lambda: UID in scheduler.states())
    ask(env, trigger="nope", disabled=True)
    wait_for(
        lambda: any(
            is_request_key(k) and v is None and k.endswith("/nope")
            for k, v in env.records(TRIGGERS)
        )
    )
    assert not scheduler.states()[UID].disabled
    logs = [v for _, v in env.records("logs") if v is not None and b"ignored" in v]
    assert len(logs) == 1


def test_a_request_is_applied_once() -> None:
    from common.flow.parser import parse_flow

    trigger = parse_flow(FLOW).triggers[0]
    locked = TriggerState(
        namespace="company.team",
        flow_id="every-minute",
        trigger_id="minute",
        evaluate_running_date=T0,
        next_execution_date=T0,
    )
    request = new_request("main", "company.team", "every-minute", "minute", T0, unlock=True)
    unlocked = apply_request(locked, request, trigger, T0)
    assert unlocked is not None and unlocked.evaluate_running_date is None
    assert unlocked.applied_requests == [request.id]
    assert apply_request(unlocked, request, trigger, T0 + timedelta(seconds=5)) is None
    enable = new_request("main", "company.team", "every-minute", "minute", T0, disabled=False)
    # already enabled: nothing to recompute, only remembered
    same = apply_request(unlocked, enable, trigger, T0)
    assert same is not None and same.next_execution_date == T0
    later = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)
    disabled = apply_request(
        same,
        new_request("main", "company.team", "every-minute", "minute", T0, disabled=True),
        trigger,
        T0,
    )
    assert disabled is not None
    enabled = apply_request(disabled, enable.model_copy(update={"id": "e2"}), trigger, later)
    assert enabled is not None and enabled.next_execution_date == datetime(
        2024, 5, 1, 12, 1, tzinfo=UTC
    )
