"""`lanner server scheduler` on Kafka: flows from the flows topic, trigger states on the
triggers topic, executions run by the executor; a restart neither fires a date twice nor
forgets where it was."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from common.models.messages import NewExecution
from common.models.state import State
from common.queue.base import EXECUTOR
from tests.ha.cluster import Cluster, flow
from tests.infra.fixtures import StartLanner
from tests.infra.processes import ManagedProcess
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

EVERY_2S = """
tasks:
  - id: tick
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }}"
triggers:
  - id: every2s
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "*/2 * * * * *"
    withSeconds: true
"""


def test_scheduled_executions_run_once_per_date_across_a_scheduler_restart(
    cluster: Cluster, lanner_process: StartLanner
) -> None:
    lanner_process(["server", "executor"], env=cluster.env("e1"), name="executor-e1")
    lanner_process(["server", "worker"], env=cluster.env("w1"), name="w1")
    cluster.deploy(flow(EVERY_2S, "ticking"))
    first = lanner_process(["server", "scheduler"], env=cluster.env("s1"), name="scheduler-1")

    def scheduled(at_least: int) -> list[str]:
        cluster.read()
        done = [
            e.id
            for e in cluster.latest.values()
            if e.flow_id == "ticking" and e.state.current == State.SUCCESS
        ]
        return done if len(done) >= at_least else []

    wait_until(lambda: scheduled(2), 90, "two scheduled executions")
    first.stop()
    lanner_process(["server", "scheduler"], env=cluster.env("s1"), name="scheduler-2")
    before = len(scheduled(0))
    wait_until(lambda: scheduled(before + 2), 90, "two more after the restart")
    dates = [
        e.task_run_list[0].outputs["value"]  # type: ignore[index]
        for e in cluster.latest.values()
        if e.flow_id == "ticking" and e.state.current == State.SUCCESS
    ]
    assert len(dates) == len(set(dates)), "a date ran twice"


def _owner_of_flows(scheduler: ManagedProcess) -> int:
    """How many flows the replica said it owns at its last hand-over (its log)."""
    owned = re.findall(
        r"scheduler owns flows partitions \[[\d, ]*\]: (\d+) flows", scheduler.log_path.read_text()
    )
    return int(owned[-1]) if owned else -1


def _contiguous(dates: list[datetime], step: timedelta) -> list[tuple[datetime, datetime]]:
    """The holes of a sorted list of dates that should be ``step`` apart."""
    return [(a, b) for a, b in zip(dates, dates[1:], strict=False) if b - a != step]


def test_two_schedulers_one_killed_fire_every_date_once_with_no_gap(
    cluster: Cluster, lanner_process: StartLanner
) -> None:
    lanner_process(["server", "executor"], env=cluster.env("e1"), name="executor-e1")
    lanner_process(["server", "worker"], env=cluster.env("w1"), name="w1")
    cluster.deploy(flow(EVERY_2S, "ticking"))
    replicas = [
        lanner_process(["server", "scheduler"], env=cluster.env(f"s{i}"), name=f"s{i}")
        for i in (1, 2)
    ]

    def ran() -> dict[datetime, list[str]]:
        cluster.read()
        by_date: dict[datetime, list[str]] = {}
        for e in cluster.latest.values():
            if e.flow_id == "ticking" and e.state.current == State.SUCCESS:
                assert e.schedule_date is not None
                by_date.setdefault(e.schedule_date, []).append(e.id)
        return by_date

    wait_until(lambda: len(ran()) >= 1, 90, "the first scheduled execution")
    started = time.monotonic()
    owner = wait_until(
        lambda: next((r for r in replicas if _owner_of_flows(r) == 1), None),
        60,
        "the replica owning the flow to say so",
    )
    wait_until(lambda: time.monotonic() - started >= 20, 30, "20 s of schedules")
    owner.kill()
    survivor = next(r for r in replicas if r is not owner)
    wait_until(lambda: _owner_of_flows(survivor) == 1, 60, "the survivor to take the flow over")
    wait_until(lambda: time.monotonic() - started >= 60, 60, "a minute of schedules")
    last = max(ran())

    def settled() -> bool:
        by_date = ran()
        return all(d in by_date for d in _every(min(by_date), last, timedelta(seconds=2)))

    wait_until(settled, 90, "every date up to the last one to have run")
    by_date = ran()
    dates = sorted(by_date)
    assert _contiguous(dates, timedelta(seconds=2)) == []
    assert {d: ids for d, ids in by_date.items() if len(ids) > 1} == {}
    assert len(dates) >= 28  # a minute of dates every 2 s, the hand-over included


def _every(first: datetime, last: datetime, step: timedelta) -> list[datetime]:
    out = [first]
    while out[-1] < last:
        out.append(out[-1] + step)
    return out


EVERY_SECOND = """
tasks:
  - id: tick
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }}"
triggers:
  - id: every-second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
"""


def test_200_flows_on_per_second_schedules_keep_every_date_across_a_killed_scheduler(
    cluster: Cluster, lanner_process: StartLanner
) -> None:
    """The scheduler side alone: what it emits to the executor, read from the topic."""
    for i in range(200):
        cluster.deploy(flow(EVERY_SECOND, f"per-second-{i:03d}"))
    replicas = [
        lanner_process(["server", "scheduler"], env=cluster.env(f"s{i}"), name=f"s{i}")
        for i in (1, 2)
    ]
    prefix = cluster.settings_dict["kafka_topic_prefix"]
    created = cluster.queue.subscribe([EXECUTOR], f"{prefix}test-created")
    dates: dict[str, dict[datetime, set[str]]] = {}

    def read() -> int:
        for record in created.poll(5000, timeout=0.5):
            new = NewExecution.model_validate_json(record.value or b"")
            when = new.execution.schedule_date
            assert when is not None
            dates.setdefault(new.execution.flow_id, {}).setdefault(when, set()).add(new.id)
        return len(dates)

    wait_until(lambda: read() == 200, 120, "every flow to fire")
    wait_until(lambda: all(_owner_of_flows(r) > 0 for r in replicas), 60, "both replicas to own")
    started = time.monotonic()
    wait_until(lambda: read() and time.monotonic() - started >= 10, 30, "10 s of schedules")
    owner = max(replicas, key=_owner_of_flows)
    owner.kill()
    killed_at = datetime.now(UTC)
    survivor = next(r for r in replicas if r is not owner)
    wait_until(lambda: _owner_of_flows(survivor) == 200, 60, "the survivor to own every flow")

    def past_the_kill() -> bool:
        read()
        return all(max(fired) >= killed_at + timedelta(seconds=10) for fired in dates.values())

    wait_until(past_the_kill, 90, "every flow to fire 10 s past the kill")
    created.close()
    holes = {
        flow_id: _contiguous(sorted(fired), timedelta(seconds=1))
        for flow_id, fired in dates.items()
    }
    assert {f: h for f, h in holes.items() if h} == {}
    twice = {f: [d for d, ids in fired.items() if len(ids) > 1] for f, fired in dates.items()}
    assert {f: d for f, d in twice.items() if d} == {}
