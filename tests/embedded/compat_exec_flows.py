"""Executor-side Kestra compatibility (issue 14), flows in Kestra's syntax and the outcomes
Kestra gives, shared by the embedded test (``tests/embedded/test_compat_exec.py``) and the
Kafka one (``tests/ha/test_compat_exec_kafka.py``); both drive a server through the API only.

``kv()`` where the executor renders. Kestra renders every property with the same Pebble
engine, whose ``kv`` function (``core/src/main/java/io/kestra/core/runners/pebble/functions/
KvFunction.java``, kestra-io/kestra@58c1ca2) reads the namespace's KV store wherever the
render happens, the executor's ``If.condition`` / ``Switch.value`` / ``runIf`` / subflow
``inputs`` / flow ``outputs`` included; ``KvFunctionTest`` fixes the outcomes used here:
``kv('key')`` reads the flow's namespace, ``kv('key', 'namespace')`` another one (no
inheritance, kestra-io/kestra#5037), a missing key is null and, with ``errorOnMissing=true``,
fails with "The key 'my-key' does not exist in the namespace 'io.kestra.tests'.".
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conformance.runner import Api
from tests.embedded import kv_flows

NS = kv_flows.NS

KV_CHILD = f"""\
id: kv_executor_child
namespace: {NS}
inputs:
  - id: mode
    type: STRING
  - id: region
    type: STRING
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.mode }}}}-{{{{ inputs.region }}}}"
outputs:
  - id: echoed
    type: STRING
    value: "{{{{ outputs.echo.value }}}}"
"""

KV_EXECUTOR = f"""\
id: kv_executor
namespace: {NS}
tasks:
  - id: set_mode
    type: io.kestra.plugin.core.kv.Set
    key: mode
    value: fast
  - id: set_limit
    type: io.kestra.plugin.core.kv.Set
    key: limit
    value: "3"
    kvType: NUMBER
  - id: set_region
    type: io.kestra.plugin.core.kv.Set
    namespace: company
    key: region
    value: eu
  - id: when_fast
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ kv('mode') == 'fast' }}}}"
    then:
      - id: fast_then
        type: io.kestra.plugin.core.debug.Return
        format: then
    else:
      - id: fast_else
        type: io.kestra.plugin.core.debug.Return
        format: else
  - id: by_mode
    type: io.kestra.plugin.core.flow.Switch
    value: "{{{{ kv('mode') }}}}"
    cases:
      fast:
        - id: case_fast
          type: io.kestra.plugin.core.debug.Return
          format: fast
    defaults:
      - id: case_default
        type: io.kestra.plugin.core.debug.Return
        format: default
  - id: skipped
    type: io.kestra.plugin.core.debug.Return
    runIf: "{{{{ kv('absent') ?? false }}}}"
    format: never
  - id: ran
    type: io.kestra.plugin.core.debug.Return
    runIf: "{{{{ kv('limit') > 2 }}}}"
    format: ran
  - id: child
    type: io.kestra.plugin.core.flow.Subflow
    namespace: {NS}
    flowId: kv_executor_child
    inputs:
      mode: "{{{{ kv('mode') }}}}"
      region: "{{{{ kv('region', 'company') }}}}"
    wait: true
outputs:
  - id: mode
    type: STRING
    value: "{{{{ kv('mode') }}}}"
  - id: region
    type: STRING
    value: "{{{{ kv(key='region', namespace='company') }}}}"
"""

KV_EXECUTOR_MISSING = f"""\
id: kv_executor_missing
namespace: {NS}
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ kv('nowhere', errorOnMissing=true) }}}}"
    then:
      - id: never
        type: io.kestra.plugin.core.debug.Return
        format: never
"""

KV_FLOW_TRIGGER = f"""\
id: kv_flow_trigger
namespace: {NS}
inputs:
  - id: mode
    type: STRING
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ inputs.mode }}}}"
triggers:
  - id: after_kv_executor
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      mode: "{{{{ kv('mode') }}}}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlowCondition
        namespace: {NS}
        flowId: kv_executor
      - type: io.kestra.plugin.core.condition.ExecutionStatusCondition
        in: [SUCCESS]
      - type: io.kestra.plugin.core.condition.ExpressionCondition
        expression: "{{{{ kv('mode') == 'fast' and kv('region', 'company') == 'eu' }}}}"
"""

KV_FLOWS = [KV_CHILD, KV_EXECUTOR, KV_EXECUTOR_MISSING, KV_FLOW_TRIGGER]


def check_kv_in_executor_renders(client: httpx.Client) -> None:
    """``If.condition``, ``Switch.value``, ``runIf``, subflow ``inputs`` and flow ``outputs``
    read KV entries a task of the same execution just wrote (the executor reads the store
    when it renders them, not a copy from before the execution)."""
    execution = kv_flows.run(client, "kv_executor")
    states = kv_flows.states(execution)
    assert execution["state"]["current"] == "SUCCESS", states
    assert states["fast_then"] == "SUCCESS" and "fast_else" not in states, states
    assert states["case_fast"] == "SUCCESS" and "case_default" not in states, states
    assert states["skipped"] == "SKIPPED" and states["ran"] == "SUCCESS", states
    child = kv_flows.outputs(execution)["child"]
    assert child["outputs"] == {"echoed": "fast-eu"}, child
    assert execution["outputs"] == {"mode": "fast", "region": "eu"}, execution.get("outputs")
    check_kv_in_flow_trigger(client, execution["id"])


def check_kv_in_flow_trigger(client: httpx.Client, watched_id: str) -> None:
    """A Flow trigger whose ``ExpressionCondition`` and ``inputs`` call ``kv()`` (the executor
    evaluates Flow triggers): it fires after ``kv_executor`` and passes the stored value."""
    from tests.infra.waiting import wait_until

    found: list[dict[str, Any]] = []

    def triggered() -> bool:
        page = client.get(
            "/api/v1/executions/search", params={"namespace": NS, "flowId": "kv_flow_trigger"}
        ).json()
        found[:] = [
            ex
            for ex in page.get("results", [])
            if (ex.get("trigger") or {}).get("variables", {}).get("executionId") == watched_id
            and ex["state"]["current"] in kv_flows.TERMINAL
        ]
        return bool(found)

    wait_until(triggered, 90, "the execution the kv() Flow trigger starts")
    (started,) = found
    assert started["state"]["current"] == "SUCCESS", started["state"]
    assert started["inputs"] == {"mode": "fast"}, started["inputs"]


def check_kv_missing_in_executor_render(client: httpx.Client) -> None:
    """``errorOnMissing=true`` in an ``If`` condition fails it with Kestra's message."""
    execution = kv_flows.run(client, "kv_executor_missing")
    assert execution["state"]["current"] == "FAILED", kv_flows.states(execution)
    messages = _messages(client, execution)
    wanted = f"The key 'nowhere' does not exist in the namespace '{NS}'."
    assert any(wanted in m for m in messages), messages


def _messages(client: httpx.Client, execution: dict[str, Any]) -> list[str]:
    from tests.infra.waiting import wait_until

    found: list[str] = []

    def logged() -> bool:
        found[:] = [e["message"] for e in client.get(f"/api/v1/logs/{execution['id']}").json()]
        return any("does not exist" in m for m in found)

    wait_until(logged, 60, "the executor's log of the failed condition")
    return found


# ---------------------------------------------------------------- ForEachItem, many batches

EACH_CHILD = f"""\
id: each_many_child
namespace: {NS}
inputs:
  - id: items
    type: STRING
tasks:
  - id: skipped
    type: io.kestra.plugin.core.debug.Return
    runIf: "{{{{ inputs.items == '' }}}}"
    format: "{{{{ inputs.items }}}}"
"""

EACH_MANY = f"""\
id: each_many
namespace: {NS}
inputs:
  - id: file
    type: FILE
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
    items: "{{{{ inputs.file }}}}"
    batch:
      rows: 1
    namespace: {NS}
    flowId: each_many_child
    wait: true
    transmitFailed: true
    inputs:
      items: "{{{{ taskrun.items }}}}"
"""

EACH_FLOWS = [EACH_CHILD, EACH_MANY]  # + EACH_KILL_FLOWS below


def each_batches(default: int = 1600) -> int:
    """How many batches the suites run: ``default`` (embedded 1,600, past the old ~1,500
    limit; Kafka fewer: the limit was the worker's output size, the same code on both, and the
    Kafka executor keeps nothing per batch) unless ``LANNER_TEST_EACH_BATCHES`` says otherwise
    (5,000 run by hand on both backends: embedded 7.2 s, Kafka 52.7 s)."""
    import os

    return int(os.environ.get("LANNER_TEST_EACH_BATCHES", str(default)))


def check_for_each_item_many_batches(api: Api, batches: int, timeout: float) -> None:
    """Kestra's ``ForEachItem`` has no batch limit (``ForEachItemCaseTest`` runs 26 batches;
    the plugin page's example splits a file of any size by ``batch.rows``): ``batches`` batches
    of one row each make as many subflow executions, and ``each_items`` counts them all
    (``numberOfBatches``, ``iterations`` ``{CREATED: 0, RUNNING: 0, SUCCESS: n}``). Lanner's
    split used to output the list of batch URIs, which past ~1,500 batches outgrew the
    worker's output limit; it now outputs a count and a prefix."""
    lines = "".join(f"{n}\n" for n in range(batches))
    created = api.create(NS, "each_many", {"file": "@content:" + lines})
    ex = api.wait_terminal(created["id"], timeout)
    by_id = {tr["taskId"]: tr for tr in ex["taskRunList"]}
    assert ex["state"]["current"] == "SUCCESS", {k: v["state"] for k, v in by_id.items()}
    items = by_id["each_items"]["outputs"]
    assert items["numberOfBatches"] == batches, items
    assert items["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": batches}, items
    split = by_id["each_split"]["outputs"]
    assert split["batches"] == batches and split["splits"].endswith("splits.txt"), split


# ---------------------------------------------------------------- restart of a PAUSED execution

PAUSE_RESTART = f"""\
id: pause_restart
namespace: {NS}
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: after
"""


def check_restart_of_a_paused_execution(api: Api, timeout: float) -> None:
    """Kestra's ``ExecutionService.restart`` (kestra-io/kestra@58c1ca2) accepts an execution
    that ``isTerminated() || isPaused()`` and restarts from its task runs that are FAILED or
    PAUSED: the answer keeps the id, RESTARTED, ``attemptNumber`` + 1, the Pause (a flowable,
    ``mapTaskRun``) RUNNING; the Pause, already PAUSED once, does not pause again
    (``Pause.needPause``) and ends SUCCESS, so the execution carries on. Through the older
    ``POST /executions/{id}/restart``, whose rules are now those of ``actions/restart``."""
    created = api.create(NS, "pause_restart", None)
    api.wait(created["id"], lambda ex: ex["state"]["current"] == "PAUSED", timeout)
    answer = api._call("POST", f"/executions/{created['id']}/restart")
    assert answer["id"] == created["id"] and answer["state"]["current"] == "RESTARTED", answer
    assert [t["state"]["current"] for t in answer["taskRunList"]] == ["RUNNING"], answer
    assert answer["metadata"]["attemptNumber"] == 2, answer["metadata"]
    ended = api.wait_terminal(created["id"], timeout)
    runs = {t["taskId"]: t for t in ended["taskRunList"]}
    assert ended["state"]["current"] == "SUCCESS", {k: v["state"] for k, v in runs.items()}
    history = [h["state"] for h in runs["pause"]["state"]["histories"]]
    assert "PAUSED" in history and "RESTARTED" in history and history[-1] == "SUCCESS", history
    assert runs["after"]["outputs"] == {"value": "after"}
    check_labels_read_your_writes(api.client, created["id"])


# ---------------------------------------------------------------- labels: read-your-writes


def check_labels_read_your_writes(client: httpx.Client, execution_id: str) -> None:
    """Kestra's ``ExecutionController.setLabels`` saves the execution before it answers, so a
    GET right after shows the labels. Lanner's executor applies them (``SetLabels``) and the
    webserver also stores its answer, with the sequence of the executor's coming snapshot:
    the GET right after shows them on Kafka too, before that snapshot is indexed."""
    labels = [{"key": "team", "value": "data"}, {"key": "ryw", "value": execution_id[:8]}]
    answer = client.post(f"/api/v1/main/executions/{execution_id}/actions/labels", json=labels)
    assert answer.status_code == 200, answer.text
    stored = client.get(f"/api/v1/main/executions/{execution_id}").json()
    got = {x["key"]: x["value"] for x in stored["labels"]}
    assert got["team"] == "data" and got["ryw"] == execution_id[:8], stored["labels"]


# ---------------------------------------------------------------- ForEachItem: kill reaches batches

EACH_PAUSED_CHILD = f"""\
id: each_paused_child
namespace: {NS}
inputs:
  - id: items
    type: STRING
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
"""

EACH_KILL = EACH_MANY.replace("id: each_many\n", "id: each_kill\n", 1).replace(
    "flowId: each_many_child", "flowId: each_paused_child", 1
)


def check_kill_reaches_every_batch(api: Api, timeout: float) -> None:
    """Kestra kills the subflow executions of a killed parent (``ExecutionService.kill`` and
    ``Executor`` kill cascade; ``isOnKillCascade`` defaults to true): the batch executions of
    a ForEachItem, whose ids the executor now derives from the items task run instead of
    listing them in its state, end KILLED with it."""
    created = api.create(NS, "each_kill", {"file": "@content:a\nb\nc\n"})

    def paused_children() -> list[dict[str, Any]]:
        return [
            ex
            for ex in api.search(NS, "each_paused_child")
            if (ex.get("trigger") or {}).get("variables", {}).get("executionId") == created["id"]
        ]

    from tests.infra.waiting import wait_until

    wait_until(
        lambda: sum(ex["state"]["current"] == "PAUSED" for ex in paused_children()) == 3,
        timeout,
        "three paused batch executions",
    )
    api._call("DELETE", f"/executions/{created['id']}/kill", ok=(200, 202))
    ended = api.wait_terminal(created["id"], timeout)
    assert ended["state"]["current"] == "KILLED", ended["state"]
    wait_until(
        lambda: [ex["state"]["current"] for ex in paused_children()] == ["KILLED"] * 3,
        timeout,
        "every batch execution KILLED",
    )


EACH_KILL_FLOWS = [EACH_PAUSED_CHILD, EACH_KILL]
