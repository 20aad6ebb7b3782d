"""The issue-14 plugins that were tested on the embedded backend only, on Kafka: one
``lanner server standalone`` (the Faust executor, a worker, the scheduler and the webserver with
its indexer, all on one Kafka cluster) for the whole module, several flows on it.

- ``storage.Reverse``, ``storage.DeduplicateItems``, ``storage.FilterItems``: the flows and
  outcomes of ``tests.plugins.scenario`` (Kestra's ``ReverseTest``, ``DeduplicateItemsTest``,
  ``FilterItemsTest``, cited there), as ``tests/plugins/test_core_plugins_embedded.py`` runs
  them on the embedded backend.
- ``trigger.Toggle``: Kestra's ``ToggleTest`` with its flow ``flows/valids/trigger-toggle.yaml``
  (kestra-io/kestra@58c1ca2, ``core/src/test/...``; the legacy type
  ``io.kestra.core.tasks.trigger.Toggle`` as written there): a disabled trigger is enabled by
  the flow's own Toggle task, and another flow's Toggle disables it again (the plugin page,
  kestra.io/plugins/core/trigger/io.kestra.plugin.core.trigger.Toggle: ``enabled`` false
  disables). On Kafka the task's request travels through the ``triggers`` topic to the
  scheduler that owns the trigger, whose new state the indexer copies to the repository.

Every other plugin of the issue already runs on both backends (``tests/flowable``,
``tests/ha/test_core_plugins_kafka.py``, ``tests/ha/test_kv_kafka.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.infra.deployment import KafkaDeployment
from tests.infra.processes import http_ok
from tests.infra.waiting import wait_until
from tests.plugins import scenario

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]
NS = "lanner.compat"


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[scenario.Api]:
    base = tmp_path_factory.mktemp("compat-kafka")
    deployment = KafkaDeployment(kafka_bootstrap_servers, f"compat-{base.name}.", base)
    try:
        deployment.init_topics()
        web = deployment.start_component("standalone", "standalone", "--port", str(deployment.port))
        web.wait_for(lambda: http_ok(deployment.url + "/health/ready"), 120, "ready")
        with httpx.Client(base_url=deployment.url, timeout=30) as client:
            yield scenario.Api(client)
    finally:
        deployment.stop()


@pytest.mark.parametrize("check", scenario.ROWS, ids=lambda c: c.__name__)
def test_row_plugin(api: scenario.Api, check: Callable[[scenario.Api, str], None]) -> None:
    check(api, f"{NS}.{check.__name__.removeprefix('check_')}")


TOGGLE_FLOW = f"""\
id: trigger-toggle
namespace: {NS}

tasks:
    - id: disable
      type: io.kestra.core.tasks.trigger.Toggle
      trigger: schedule
      enabled: true

triggers:
  - id: schedule
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 1 1 *"
"""
TOGGLER = f"""\
id: toggler
namespace: {NS}
tasks:
  - id: switch_off
    type: io.kestra.plugin.core.trigger.Toggle
    flowId: trigger-toggle
    trigger: schedule
    enabled: false
"""


def test_toggle(api: scenario.Api) -> None:
    """Kestra's ``ToggleTest.toggle``: the execution of ``trigger-toggle`` ends SUCCESS with one
    task run and its disabled ``schedule`` is enabled; here it was disabled first by another
    flow's Toggle (``enabled: false``). The yearly cron never fires during the test, so only the
    Toggle tasks change the trigger."""
    client = api.client

    def context() -> dict[str, Any] | None:
        response = client.get(
            "/api/v1/triggers/search", params={"namespace": NS, "flowId": "trigger-toggle"}
        )
        response.raise_for_status()
        for item in response.json()["results"]:
            if item["triggerContext"]["triggerId"] == "schedule":
                return dict(item["triggerContext"])
        return None

    api.deploy(TOGGLE_FLOW)
    api.deploy(TOGGLER)
    wait_until(context, scenario.DEADLINE, "the scheduler to evaluate the schedule")

    off = api.run(NS, "toggler")
    assert off["state"]["current"] == "SUCCESS", off
    wait_until(
        lambda: (c := context()) is not None and c.get("disabled") is True,
        scenario.DEADLINE,
        "the Toggle task's disabling to apply",
    )

    on = api.run(NS, "trigger-toggle")
    assert on["state"]["current"] == "SUCCESS", on
    assert len(on["taskRunList"]) == 1
    wait_until(
        lambda: (c := context()) is not None and not c.get("disabled"),
        scenario.DEADLINE,
        "the Toggle task's enabling to apply",
    )
