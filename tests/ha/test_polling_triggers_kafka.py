"""A polling trigger on Kafka (``lanner server scheduler``, ``worker``, ``executor`` processes)
against a real HTTP server the test starts: the worker evaluating it is killed (kill -9) in the
middle of the request; the evaluation lock does not stay forever: once the lock timeout has
passed the scheduler sends the trigger again, another worker evaluates it, the execution gets
the response as ``trigger.*``, and after that execution ends (the executor's unlock) the
trigger fires again.

Kestra references: ``AbstractScheduler`` (``evaluateRunningDate``: one evaluation at a time,
none while the execution it started runs) and ``io.kestra.plugin.core.http.Trigger``. Kestra
hands a dead worker's ``WorkerTrigger`` back through its liveness; Lanner uses a lock timeout
(``polling_trigger_lock_timeout_seconds``, ``scheduler.polling``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.models.execution import Execution
from common.models.state import State
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


def test_http_trigger_on_kafka_survives_a_worker_killed_mid_evaluation(
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
