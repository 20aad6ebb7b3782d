"""`lanner server scheduler` on Kafka: flows from the flows topic, trigger states on the
triggers topic, executions run by the executor; a restart neither fires a date twice nor
forgets where it was."""

from __future__ import annotations

import pytest

from common.models.state import State
from tests.ha.cluster import Cluster, flow
from tests.infra.fixtures import StartLanner
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
