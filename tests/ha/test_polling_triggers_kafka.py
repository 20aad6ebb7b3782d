"""A polling trigger on Kafka (``lanner server scheduler``, ``worker``, ``executor`` processes)
against a real HTTP server the test starts: the worker evaluating it is killed (kill -9) in the
middle of the request; the evaluation lock does not stay forever: once the lock timeout has
passed the scheduler sends the trigger again, another worker evaluates it, the execution gets
the response as ``trigger.*``, and after that execution ends (the executor's unlock) the
trigger fires again. Then, on the same processes, a Flow trigger disabled through a trigger
request (what the API sends) does not fire, and fires again once enabled: the Faust executor
reads the trigger states (``common.trigger_states``).

Kestra references: ``AbstractScheduler`` (``evaluateRunningDate``: one evaluation at a time,
none while the execution it started runs) and ``io.kestra.plugin.core.http.Trigger``. Kestra
hands a dead worker's ``WorkerTrigger`` back through its liveness; Lanner uses a lock timeout
(``polling_trigger_lock_timeout_seconds``, ``scheduler.polling``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from common.models.execution import Execution
from common.models.state import State
from common.models.trigger import TriggerState, is_request_key
from common.queue.base import TRIGGERS
from common.trigger_requests import new_request, send_request
from tests.embedded.test_polling_triggers import HttpFixture
from tests.ha.cluster import Cluster, flow
from tests.infra.fixtures import StartLanner
from tests.infra.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


@pytest.fixture
def http() -> Iterator[HttpFixture]:
    server = HttpFixture()
    yield server
    server.close()


UPSTREAM = """
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: up
"""
DOWNSTREAM = """
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.executionId }}"
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: ha
        flowId: upstream
"""


def test_http_trigger_survives_a_killed_worker_and_a_disabled_flow_trigger_stays_quiet(
    cluster: Cluster, lanner_process: StartLanner, http: HttpFixture
) -> None:
    endpoint = http.endpoint("kafka", body={"ready": True})
    endpoint.gate.clear()  # the first request waits: the worker is killed meanwhile
    env = {"LANNER_POLLING_TRIGGER_LOCK_TIMEOUT_SECONDS": "10"}
    lanner_process(["server", "executor"], env=cluster.env("e1"), name="executor")
    lanner_process(["server", "scheduler"], env={**cluster.env("s1"), **env}, name="scheduler")
    doomed = lanner_process(["server", "worker"], env=cluster.env("w1"), name="worker-w1")
    cluster.deploy(
        flow(
            f"""
            tasks:
              - id: ret
                type: io.kestra.plugin.core.debug.Return
                format: "{{{{ trigger.code }}}} {{{{ trigger.body.ready }}}}"
            triggers:
              - id: poll
                type: io.kestra.plugin.core.http.Trigger
                uri: {http.url}/kafka
                interval: PT1S
            """,
            "polled",
        )
    )
    wait_until(lambda: endpoint.requests >= 1, 120, "the first evaluation to reach the server")
    doomed.kill()
    endpoint.gate.set()  # the killed worker's request answers into the void
    lanner_process(["server", "worker"], env=cluster.env("w2"), name="worker-w2")

    def ended() -> list[Execution]:
        cluster.read()
        return [
            e
            for e in cluster.latest.values()
            if e.flow_id == "polled" and e.state.current == State.SUCCESS
        ]

    first = wait_until(ended, 150, "an execution once the dead worker's lock expired")[0]
    assert first.trigger is not None and first.trigger.id == "poll"
    assert first.trigger.variables["code"] == 200
    assert first.trigger.variables["body"] == {"ready": True}
    assert endpoint.requests >= 2  # evaluated again by w2
    assert endpoint.max_in_flight == 1
    # that execution ended: the executor's unlock lets the trigger fire again
    wait_until(lambda: len(ended()) >= 2, 90, "a second execution after the first ended")
    assert endpoint.max_in_flight == 1

    # ---- a Flow trigger disabled through a trigger request (the API's path)
    cluster.deploy(flow(UPSTREAM, "upstream"))
    cluster.deploy(flow(DOWNSTREAM, "downstream"))
    watch = cluster.queue.subscribe(
        [TRIGGERS], f"{cluster.settings_dict['kafka_topic_prefix']}test-trigger-states"
    )
    states: dict[str, TriggerState] = {}

    def stored(disabled: bool) -> bool:
        for record in watch.poll(500, timeout=0.2):
            if record.value is not None and not is_request_key(record.key):
                state = TriggerState.model_validate_json(record.value)
                states[state.flow_id] = state
        return "downstream" in states and states["downstream"].disabled is disabled

    def triggered_by() -> list[str]:
        cluster.read()
        return [
            str(e.trigger.variables.get("executionId"))
            for e in cluster.latest.values()
            if e.flow_id == "downstream" and e.trigger is not None
        ]

    for disabled, execution_id in ((True, "up-disabled"), (False, "up-enabled")):
        request = new_request("main", "ha", "downstream", "after", datetime.now(UTC))
        send_request(cluster.queue, request.model_copy(update={"disabled": disabled}))
        wait_until(lambda d=disabled: stored(d), 90, f"the scheduler to store disabled={disabled}")
        cluster.create("ha", "upstream", execution_id)
        cluster.wait_ended([execution_id], timeout=90)
    wait_until(lambda: "up-enabled" in triggered_by(), 90, "downstream once enabled")
    watch.close()
    downstream = [e for e in cluster.latest.values() if e.flow_id == "downstream"]
    cluster.wait_ended([e.id for e in downstream], timeout=90)
    assert triggered_by() == ["up-enabled"]
