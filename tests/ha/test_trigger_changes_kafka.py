"""Disable and enable on Kafka with two scheduler replicas: each replica applies the requests of
the flows of its partitions, the dates after a disabling never fire, and re-enabling resumes
after the time it was asked for (the dates missed meanwhile never fire). Requests sent while a
replica dies are applied by the survivor once it owns the flows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from common.models.messages import EXECUTOR_INPUT, NewExecution
from common.models.trigger import TriggerState, is_request_key
from common.queue.base import EXECUTOR, TRIGGERS
from common.trigger_requests import new_request, send_request
from tests.ha.cluster import Cluster, flow
from tests.infra.fixtures import StartLanner
from tests.infra.processes import ManagedProcess
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

EVERY_SECOND = """
tasks:
  - id: tick
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.date }}"
triggers:
  - id: every
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
"""
FLOWS = [f"t{i}" for i in range(12)]


class Watch:
    """The trigger states and the scheduled dates seen on the topics so far."""

    def __init__(self, cluster: Cluster, group: str) -> None:
        self.subscription = cluster.queue.subscribe([TRIGGERS, EXECUTOR], group)
        self.states: dict[str, TriggerState] = {}
        self.history: dict[str, list[TriggerState]] = {}
        self.dates: dict[str, set[datetime]] = {f: set() for f in FLOWS}

    def read(self) -> None:
        while records := self.subscription.poll(1000, timeout=0.2):
            for record in records:
                if record.value is None or is_request_key(record.key):
                    continue
                if record.topic == TRIGGERS:
                    state = TriggerState.model_validate_json(record.value)
                    self.states[state.flow_id] = state
                    self.history.setdefault(state.flow_id, []).append(state)
                else:
                    message = EXECUTOR_INPUT.validate_json(record.value)
                    if isinstance(message, NewExecution):
                        execution = message.execution
                        assert execution.schedule_date is not None
                        self.dates[execution.flow_id].add(execution.schedule_date)

    def all(self, predicate: object) -> bool:
        self.read()
        return all(
            f in self.states and predicate(self.states[f])  # type: ignore[operator]
            for f in FLOWS
        )


def _owned(replica: ManagedProcess) -> int:
    found = re.findall(
        r"scheduler owns flows partitions \[[\d, ]*\]: (\d+) flows", replica.log_path.read_text()
    )
    return int(found[-1]) if found else -1


def test_disable_and_enable_with_two_scheduler_replicas(
    cluster: Cluster, lanner_process: StartLanner
) -> None:
    for flow_id in FLOWS:
        cluster.deploy(flow(EVERY_SECOND, flow_id))
    replicas = [
        lanner_process(["server", "scheduler"], env=cluster.env(f"s{i}"), name=f"s{i}")
        for i in (1, 2)
    ]
    wait_until(
        lambda: (
            all(_owned(r) >= 1 for r in replicas) and sum(_owned(r) for r in replicas) == len(FLOWS)
        ),
        90,
        "both replicas to own some of the flows",
    )
    watch = Watch(cluster, f"{cluster.settings_dict['kafka_topic_prefix']}test-watch")

    def firing() -> bool:
        return watch.all(bool) and all(len(watch.dates[f]) >= 2 for f in FLOWS)

    wait_until(firing, 90, "every flow to fire twice")

    for flow_id in FLOWS:
        send_request(
            cluster.queue,
            new_request("main", "ha", flow_id, "every", datetime.now(UTC), disabled=True),
        )
    wait_until(lambda: watch.all(lambda s: s.disabled), 60, "every trigger to be disabled")
    first_skipped = {
        f: next(s for s in watch.history[f] if s.disabled).next_execution_date for f in FLOWS
    }
    assert all(first_skipped.values())
    wait_until(
        lambda: watch.all(
            lambda s: s.next_execution_date >= first_skipped[s.flow_id] + timedelta(seconds=3)
        ),
        60,
        "three seconds of ticks while disabled",
    )
    for flow_id in FLOWS:
        assert all(d < first_skipped[flow_id] for d in watch.dates[flow_id]), flow_id

    enabled_at = datetime.now(UTC)
    for flow_id in FLOWS:
        send_request(
            cluster.queue, new_request("main", "ha", flow_id, "every", enabled_at, disabled=False)
        )

    def resumed() -> bool:
        watch.read()
        return all(len([d for d in watch.dates[f] if d >= first_skipped[f]]) >= 2 for f in FLOWS)

    wait_until(resumed, 90, "every schedule to fire again")
    for flow_id in FLOWS:
        again = [d for d in watch.dates[flow_id] if d >= first_skipped[flow_id]]
        assert min(again) > enabled_at, flow_id  # nothing of the disabled period fired
    # each request was applied by one replica, the owner of its flow
    applied = [
        line
        for replica in replicas
        for line in replica.log_path.read_text().splitlines()
        if "applied the request" in line
    ]
    assert len(applied) == 2 * len(FLOWS)

    # requests sent while a replica dies: the survivor holds them pending and applies those of
    # the dead replica's flows once they are handed over to it
    dead, survivor = replicas
    dead.kill()
    for flow_id in FLOWS:
        send_request(
            cluster.queue,
            new_request("main", "ha", flow_id, "every", datetime.now(UTC), disabled=True),
        )
    wait_until(lambda: _owned(survivor) == len(FLOWS), 60, "the survivor to own every flow")
    wait_until(lambda: watch.all(lambda s: s.disabled), 60, "every trigger to be disabled again")
    watch.subscription.close()
