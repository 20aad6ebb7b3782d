"""Task retries on a real ``lanner server local`` process, through the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.embedded import live_server as live
from tests.infra.waiting import wait_until

NAMESPACE = "lanner.retries"
FLOWS = [
    f"""\
id: new-execution-duration
namespace: {NAMESPACE}
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    retry:
      behavior: CREATE_NEW_EXECUTION
      type: constant
      interval: PT1S
      maxDuration: PT5S
""",
    f"""\
id: flowable-retry
namespace: {NAMESPACE}
tasks:
  - id: flowable
    type: io.kestra.plugin.core.flow.Sequential
    retry:
      type: constant
      interval: PT0.2S
      maxAttempt: 3
    tasks:
      - id: child
        type: io.kestra.plugin.core.execution.Fail
""",
    f"""\
id: failing-child
namespace: {NAMESPACE}
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
""",
    f"""\
id: subflow-retry
namespace: {NAMESPACE}
tasks:
  - id: subflow
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {NAMESPACE}
    flowId: failing-child
    retry:
      type: constant
      interval: PT0.2S
      maxAttempt: 3
""",
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with live.serving(Path(tmp_path_factory.mktemp("retries")), FLOWS) as http:
        yield http


def test_create_new_execution_with_only_max_duration_ends(client: httpx.Client) -> None:
    first_id = live.create(client, NAMESPACE, "new-execution-duration")

    def chain_ended() -> list[dict[str, Any]]:
        found = live.executions(client, NAMESPACE, "new-execution-duration")
        ended = [e for e in found if e["state"]["current"] in live.TERMINAL]
        last = max((e["metadata"]["attemptNumber"] for e in found), default=0)
        # the chain ends with one FAILED execution, once every execution it made is indexed
        failed = [e for e in found if e["state"]["current"] == "FAILED"]
        return found if failed and len(ended) == len(found) == last else []

    chain = wait_until(chain_ended, 30, "the retried executions to end in one FAILED execution")
    chain.sort(key=lambda e: e["metadata"]["attemptNumber"])
    assert [e["metadata"]["attemptNumber"] for e in chain] == list(range(1, len(chain) + 1))
    assert [e["state"]["current"] for e in chain] == ["RETRIED"] * (len(chain) - 1) + ["FAILED"]
    # an interval of 1 s within 5 s leaves room for at least one retry, even on a slow machine
    assert len(chain) >= 2
    assert chain[0]["id"] == first_id
    assert all(e["originalId"] == first_id for e in chain[1:])
    origin = chain[0]["metadata"]["originalCreatedDate"]
    assert origin and all(e["metadata"]["originalCreatedDate"] == origin for e in chain)


def _task_run(execution: dict[str, Any], task_id: str) -> dict[str, Any]:
    (found,) = [t for t in execution["taskRunList"] if t["taskId"] == task_id]
    return found


def test_retry_on_a_sequential_runs_its_failed_child_again(client: httpx.Client) -> None:
    ended = live.terminal(client, live.create(client, NAMESPACE, "flowable-retry"))
    assert ended["state"]["current"] == "FAILED"
    assert [t["taskId"] for t in ended["taskRunList"]] == ["flowable", "child"]
    child = _task_run(ended, "child")
    assert [a["state"]["current"] for a in child["attempts"]] == ["FAILED"] * 3


def test_retry_on_a_subflow_task_starts_a_new_subflow_execution(client: httpx.Client) -> None:
    parent_id = live.create(client, NAMESPACE, "subflow-retry")
    ended = live.terminal(client, parent_id)
    assert ended["state"]["current"] == "FAILED"
    subflow = _task_run(ended, "subflow")
    assert [a["state"]["current"] for a in subflow["attempts"]] == ["FAILED"] * 3

    def children() -> list[dict[str, Any]]:
        found = [
            e
            for e in live.executions(client, NAMESPACE, "failing-child")
            if (e.get("trigger") or {}).get("variables", {}).get("executionId") == parent_id
        ]
        return found if len(found) >= 3 else []

    found = wait_until(children, 30, "the three subflow executions to be indexed")
    assert sorted(e["state"]["current"] for e in found) == ["FAILED"] * 3
    assert subflow["outputs"]["executionId"] in {e["id"] for e in found}
