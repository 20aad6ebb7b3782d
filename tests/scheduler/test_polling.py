"""The polling-trigger lock (``scheduler.polling``), pure, with explicit dates.

Kestra's ``AbstractScheduler`` locks a polling trigger with ``evaluateRunningDate`` while it is
evaluated and keeps it while the execution runs (``isExecutionNotRunning``); here a lock that no
worker answers expires after the lock timeout (a dead worker), a lock held by an execution
does not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import LannerError
from common.flow import parse_flow
from common.models.trigger import PollingEvaluation
from common.plugins.base import PollingTrigger
from scheduler import polling

T0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=30)
FLOW = parse_flow(
    """\
id: polled
namespace: lanner.polling
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: x
triggers:
  - id: poll
    type: io.kestra.plugin.core.http.Trigger
    uri: http://127.0.0.1:1/
    interval: PT10S
"""
)
TRIGGER = FLOW.triggers[0]
assert isinstance(TRIGGER, PollingTrigger)


def _due(state, now):  # type: ignore[no-untyped-def]
    return polling.due(FLOW, TRIGGER, state, now, tenant="main", lock_timeout=TIMEOUT)


def test_a_lock_no_worker_answers_expires_after_the_timeout() -> None:
    first = _due(None, T0)
    assert first.send is not None and first.state is not None
    assert first.state.evaluate_running_date == T0
    assert _due(first.state, T0 + TIMEOUT).send is None  # still locked
    again = _due(first.state, T0 + TIMEOUT + timedelta(seconds=1))
    assert again.send is not None and again.send.date == T0 + TIMEOUT + timedelta(seconds=1)
    assert [entry.level for entry in again.logs] == ["WARN"]
    # the dead worker's late answer names the old lock: it changes nothing
    late = PollingEvaluation(date=T0, variables={"code": 200})
    assert polling.on_evaluation(FLOW, TRIGGER, again.state, late, T0, tenant="main").state is None


def test_a_lock_held_by_a_running_execution_never_expires_and_ends_with_it() -> None:
    sent = _due(None, T0)
    answer = PollingEvaluation(date=T0, variables={"code": 200})
    fired = polling.on_evaluation(FLOW, TRIGGER, sent.state, answer, T0, tenant="main")
    assert fired.state is not None and len(fired.executions) == 1
    execution_id = fired.executions[0].execution_id
    assert execution_id == polling.polling_execution_id(fired.state.uid, T0)
    assert _due(fired.state, T0 + timedelta(days=1)).send is None
    # applied twice (a fail-over): nothing more
    assert (
        polling.on_evaluation(FLOW, TRIGGER, fired.state, answer, T0, tenant="main").state is None
    )
    assert polling.on_execution_ended(fired.state, "another", T0) is None
    unlocked = polling.on_execution_ended(fired.state, execution_id, T0 + timedelta(seconds=1))
    assert unlocked is not None and unlocked.evaluate_running_date is None
    assert _due(unlocked, T0 + timedelta(seconds=10)).send is not None


def test_an_empty_answer_unlocks_until_the_next_interval() -> None:
    sent = _due(None, T0)
    answer = PollingEvaluation(date=T0, variables=None)
    done = polling.on_evaluation(
        FLOW, TRIGGER, sent.state, answer, T0 + timedelta(seconds=2), tenant="main"
    )
    assert done.state is not None and done.state.evaluate_running_date is None
    assert _due(done.state, T0 + timedelta(seconds=11)).send is None
    assert _due(done.state, T0 + timedelta(seconds=12)).send is not None


def test_an_interval_that_is_not_a_positive_duration_is_refused_at_deploy() -> None:
    for bad in ("PT0S", "every minute"):
        source = f"""\
id: bad
namespace: lanner.polling
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: x
triggers:
  - id: poll
    type: io.kestra.plugin.core.http.Trigger
    uri: http://127.0.0.1:1/
    interval: {bad}
"""
        with pytest.raises((LannerError, ValueError)):
            parse_flow(source)


def test_an_evaluation_lock_from_before_an_embedded_restart_expires_at_once() -> None:
    locked = _due(None, T0).state
    assert locked is not None
    later = T0 + timedelta(seconds=1)
    again = polling.due(
        FLOW, TRIGGER, locked, later, tenant="main", lock_timeout=TIMEOUT, orphaned=True
    )
    assert again.send is not None and again.send.date == later
    assert "before a restart" in again.logs[0].message
