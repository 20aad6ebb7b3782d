"""Kestra 2.0's execution orders: every ``/executions/{id}/actions/...`` route and every bulk
``by-ids`` / ``by-query`` route, on the embedded backends (SQLite queue and repository): the
status, Kestra's JSON field names and what goes to the executor.

Kestra references (kestra-io/kestra): ``ExecutionService.restart`` / ``replay`` /
``forceRun``, ``ConcurrencyLimitService.unqueue``, ``ExecutionController`` (kill, labels,
by-ids, by-query) and ``ErrorController`` (IllegalArgumentException -> 422); the shapes are
those of Kestra's OpenAPI 2.0.0-SNAPSHOT (kestra-io/client-sdk ``kestra-ee.yml``):
``Execution`` (required fields), ``ApiAsyncOperationResponse``, ``BulkResponse``,
``BulkErrorResponse``, ``PagedResults``.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from common.backends import Backends
from common.models.execution import Execution, Label, StateEntry, StateInfo, TaskRun
from common.models.messages import (
    Dequeue,
    Kill,
    ManualPause,
    NewExecution,
    Restart,
    Resume,
    SetLabels,
    Timer,
)
from common.models.state import State
from tests.contracts.repository import T0, make_execution
from tests.webserver.conftest import both_repositories, executor_inputs

API = "/api/v1/main/executions"
# Kestra's `Execution` schema: its required properties
EXECUTION_FIELDS = {
    "deleted",
    "flowId",
    "flowRevision",
    "id",
    "metadata",
    "namespace",
    "originalId",
    "state",
}


def kestra_execution(body: dict[str, Any]) -> dict[str, Any]:
    assert EXECUTION_FIELDS <= body.keys(), EXECUTION_FIELDS - body.keys()
    assert {"current", "histories"} <= body["state"].keys()
    return body


def with_runs(execution_id: str, state: State, *runs: tuple[str, str, State]) -> Execution:
    """An execution in ``state`` with task runs (id, task id, state)."""
    execution = make_execution(execution_id, state=state)
    for run_id, task_id, run_state in runs:
        execution.task_run_list.append(
            TaskRun(
                id=run_id,
                execution_id=execution_id,
                namespace=execution.namespace,
                flow_id=execution.flow_id,
                task_id=task_id,
                state=StateInfo(
                    current=run_state, histories=[StateEntry(state=run_state, date=T0)]
                ),
            )
        )
    return execution


def save(backends: Backends, *executions: Execution) -> None:
    for execution in executions:
        backends.repositories.executions.save(execution)


def test_kill(client: TestClient, backends: Backends) -> None:
    save(
        backends,
        make_execution("k1", state=State.RUNNING),
        make_execution("k2", state=State.SUCCESS),
    )
    response = client.delete(f"{API}/k1/actions/kill")
    assert response.status_code == 200, response.text
    body = kestra_execution(response.json())
    assert body["id"] == "k1" and body["state"]["current"] == "KILLING"
    done = client.delete(f"{API}/k2/actions/kill")
    assert done.status_code == 409
    assert done.json()["message"] == "Execution is already finished, can't kill it"
    assert client.delete(f"{API}/nobody/actions/kill").status_code == 404
    (order,) = executor_inputs(backends)
    assert isinstance(order, Kill) and order.execution_id == "k1"


def test_restart_follows_kestras_rules(client: TestClient, backends: Backends) -> None:
    save(
        backends,
        with_runs("failed", State.FAILED, ("t1", "a", State.SUCCESS), ("t2", "b", State.FAILED)),
        with_runs("fine", State.SUCCESS, ("t1", "a", State.SUCCESS)),
        with_runs("killed", State.KILLED, ("t1", "a", State.KILLED)),
        make_execution("running", state=State.RUNNING),
    )
    response = client.post(f"{API}/failed/actions/restart")
    assert response.status_code == 200, response.text
    body = kestra_execution(response.json())
    # the state right after the call: the same execution, RESTARTED, its failed run RESTARTED
    assert body["id"] == "failed" and body["state"]["current"] == "RESTARTED"
    runs = {run["id"]: run["state"]["current"] for run in body["taskRunList"]}
    assert runs == {"t1": "SUCCESS", "t2": "RESTARTED"}
    assert body["metadata"]["attemptNumber"] == 2
    # nothing failed: Kestra's 422 and message (a KILLED task run is not a failed one)
    for execution_id in ("fine", "killed"):
        refused = client.post(f"{API}/{execution_id}/actions/restart")
        assert refused.status_code == 422, refused.text
        assert refused.json()["message"] == "No task found to restart execution from!"
    running = client.post(f"{API}/running/actions/restart")
    assert running.status_code == 409
    assert "must be terminated" in running.json()["message"]
    assert client.post(f"{API}/nobody/actions/restart").status_code == 404
    (order,) = executor_inputs(backends)
    assert isinstance(order, Restart) and order.execution_id == "failed"


def test_restart_a_warning_execution_holding_a_failed_task_run(
    client: TestClient, backends: Backends
) -> None:
    """Kestra's ``ExecutionService.restart`` (kestra-io/kestra@58c1ca2): any ended execution
    with a task run whose current state is FAILED restarts, here a WARNING one whose failure
    an AllowFailure absorbed; the failed task run is RESTARTED and its ancestors
    (``taskRunWithAncestors``) RUNNING again (``mapTaskRun``: a flowable ancestor)."""
    warned = with_runs(
        "warned",
        State.WARNING,
        ("w1", "absorb", State.WARNING),
        ("w2", "flaky", State.FAILED),
        ("w3", "after", State.SUCCESS),
    )
    warned.task_run_list[1].parent_task_run_id = "w1"
    save(backends, warned, with_runs("paused", State.PAUSED, ("p1", "wait", State.PAUSED)))
    response = client.post(f"{API}/warned/actions/restart")
    assert response.status_code == 200, response.text
    body = kestra_execution(response.json())
    assert body["state"]["current"] == "RESTARTED"
    runs = {run["id"]: run["state"]["current"] for run in body["taskRunList"]}
    assert runs == {"w1": "RUNNING", "w2": "RESTARTED", "w3": "SUCCESS"}
    # a PAUSED execution restarts from its PAUSED task runs (Kestra's ``restart`` accepts
    # ``isPaused()``; the Pause, a flowable, is RUNNING in the answer, ``mapTaskRun``)
    paused = client.post(f"{API}/paused/actions/restart")
    assert paused.status_code == 200, paused.text
    assert paused.json()["state"]["current"] == "RESTARTED"
    assert [run["state"]["current"] for run in paused.json()["taskRunList"]] == ["RUNNING"]
    orders = executor_inputs(backends)
    assert [(type(o), o.execution_id) for o in orders] == [
        (Restart, "warned"),
        (Restart, "paused"),
    ]


def test_replay(client: TestClient, backends: Backends, hello: dict[str, Any]) -> None:
    save(
        backends,
        with_runs("old", State.FAILED, ("t1", "log", State.SUCCESS), ("t2", "log", State.FAILED)),
        make_execution("running", state=State.RUNNING),
    )
    response = client.post(f"{API}/old/actions/replay", params={"taskRunId": "t2"})
    assert response.status_code == 200, response.text
    body = kestra_execution(response.json())
    assert body["id"] != "old" and body["parentId"] == "old" and body["originalId"] == "old"
    assert body["state"]["current"] == "RESTARTED"
    assert [run["id"] for run in body["taskRunList"]] == ["t1"]
    whole = kestra_execution(client.post(f"{API}/old/actions/replay").json())
    assert whole["state"]["current"] == "CREATED" and whole["taskRunList"] == []
    unknown = client.post(f"{API}/old/actions/replay", params={"taskRunId": "nope"})
    assert unknown.status_code == 422
    assert unknown.json()["message"] == "No task found to restart execution from!"
    # Kestra's replay checks no state (``ExecutionController.replay``, kestra-io/kestra@58c1ca2)
    running = kestra_execution(client.post(f"{API}/running/actions/replay").json())
    assert running["state"]["current"] == "CREATED" and running["parentId"] == "running"
    created = [m for m in executor_inputs(backends) if isinstance(m, NewExecution)]
    assert [m.execution.id for m in created] == [body["id"], whole["id"], running["id"]]
    # stored at once: a GET right after finds the replay
    assert client.get(f"{API}/{body['id']}").json()["parentId"] == "old"


def test_resume(client: TestClient, backends: Backends) -> None:
    save(
        backends,
        with_runs("paused", State.PAUSED, ("t1", "wait", State.PAUSED)),
        make_execution("running", state=State.RUNNING),
    )
    response = client.post(f"{API}/paused/actions/resume", data={"ok": "yes"})
    assert response.status_code == 200, response.text
    body = kestra_execution(response.json())
    assert body["state"]["current"] == "RUNNING"
    assert body["taskRunList"][0]["state"]["current"] == "RUNNING"
    assert client.post(f"{API}/running/actions/resume").status_code == 409
    (order,) = executor_inputs(backends)
    assert isinstance(order, Resume) and order.inputs == {"ok": "yes"}


def test_pause(client: TestClient, backends: Backends) -> None:
    save(
        backends,
        make_execution("r1", state=State.RUNNING),
        make_execution("s1", state=State.SUCCESS),
    )
    response = client.post(f"{API}/r1/actions/pause")
    assert response.status_code == 200, response.text
    assert kestra_execution(response.json())["state"]["current"] == "PAUSED"
    refused = client.post(f"{API}/s1/actions/pause")
    assert refused.status_code == 409
    assert refused.json()["message"] == "The execution is not running"
    (order,) = executor_inputs(backends)
    assert isinstance(order, ManualPause) and order.execution_id == "r1"


def test_unqueue_and_force_run(client: TestClient, backends: Backends) -> None:
    save(
        backends,
        make_execution("q1", state=State.QUEUED),
        make_execution("q2", state=State.QUEUED),
        make_execution("q3", state=State.QUEUED),
        make_execution("c1", state=State.CREATED),
        make_execution("p1", state=State.PAUSED),
        make_execution("r1", state=State.RUNNING),
        make_execution("s1", state=State.SUCCESS),
    )
    started = client.post(f"{API}/q1/actions/unqueue", params={"state": "RUNNING"})
    assert started.status_code == 200, started.text
    assert kestra_execution(started.json())["state"]["current"] == "RUNNING"
    killed = client.post(f"{API}/q2/actions/unqueue", params={"state": "KILLED"})
    assert killed.json()["state"]["current"] == "KILLING"
    assert (
        client.post(f"{API}/q3/actions/unqueue", params={"state": "CANCELLED"}).status_code == 422
    )
    not_queued = client.post(f"{API}/r1/actions/unqueue", params={"state": "RUNNING"})
    assert not_queued.status_code == 409
    assert not_queued.json()["message"] == "Only QUEUED execution can be unqueued"

    for execution_id in ("q3", "c1", "p1", "r1"):
        forced = client.post(f"{API}/{execution_id}/actions/force-run")
        assert forced.status_code == 200, forced.text
        kestra_execution(forced.json())
    ended = client.post(f"{API}/s1/actions/force-run")
    assert ended.status_code == 409
    assert ended.json()["message"] == "Only non terminated executions can be forced run."

    orders = executor_inputs(backends)
    kinds = [(type(o), o.execution_id) for o in orders]
    assert kinds == [
        (Dequeue, "q1"),
        (Kill, "q2"),
        (Dequeue, "q3"),
        (Timer, "c1"),
        (Resume, "p1"),
    ]  # a RUNNING execution forced to run is answered as it is, nothing sent
    assert all(o.running_count == 0 for o in orders if isinstance(o, Dequeue))


def test_labels(client: TestClient, backends: Backends) -> None:
    save(
        backends,
        make_execution(
            "done", state=State.SUCCESS, labels={"team": "a", "system.correlationId": "x"}
        ),
        make_execution("running", state=State.RUNNING),
    )
    labels = [{"key": "team", "value": "b"}, {"key": "env", "value": "prod"}]
    response = client.post(f"{API}/done/actions/labels", json=labels)
    assert response.status_code == 200, response.text
    body = kestra_execution(response.json())
    assert {(x["key"], x["value"]) for x in body["labels"]} == {
        ("team", "b"),
        ("env", "prod"),
        ("system.correlationId", "x"),
    }
    # the executor owns the execution: the labels go to it; the answer is also stored with
    # the sequence of the executor's coming snapshot (read-your-writes: a GET right after
    # shows them; the snapshot, same sequence and labels, replaces it)
    (order,) = executor_inputs(backends)
    assert isinstance(order, SetLabels) and order.execution_id == "done"
    assert [(x.key, x.value) for x in order.labels] == [("team", "b"), ("env", "prod")]
    stored = client.get(f"{API}/done").json()
    assert {x["key"]: x["value"] for x in stored["labels"]} == {
        "team": "b",
        "env": "prod",
        "system.correlationId": "x",
    }
    assert stored["sequence"] == body["sequence"] == 1
    not_ended = client.post(f"{API}/running/actions/labels", json=labels)
    assert not_ended.status_code == 400
    assert not_ended.json()["message"] == "The execution is not terminated"
    system = client.post(
        f"{API}/done/actions/labels", json=[{"key": "system.correlationId", "value": "y"}]
    )
    assert system.status_code == 422 and "System labels" in system.json()["message"]
    same_system = client.post(
        f"{API}/done/actions/labels", json=[{"key": "system.correlationId", "value": "x"}]
    )
    assert same_system.status_code == 200  # Kestra: an unchanged system label is accepted
    assert len(executor_inputs(backends)) == 2


def test_execution_graph_and_flow(
    client: TestClient, backends: Backends, hello: dict[str, Any]
) -> None:
    save(backends, make_execution("g1", state=State.SUCCESS))
    graph = client.get(f"{API}/g1/graph")
    assert graph.status_code == 200, graph.text
    assert {"nodes", "edges", "clusters"} <= graph.json().keys()
    flow = client.get(f"{API}/g1/flow").json()
    assert (flow["namespace"], flow["id"], flow["revision"]) == ("company.team", "hello", 1)
    assert client.get(f"{API}/flows/company.team/hello").json()["tasks"] == flow["tasks"]
    assert client.get(f"{API}/flows/company.team/nope").status_code == 404


# ---------------------------------------------------------------- bulk


def async_answer(response: Any, count: int) -> None:
    """Kestra 2.0's ``ApiAsyncOperationResponse`` (202), with the older ``count``."""
    assert response.status_code == 202, response.text
    body = response.json()
    assert isinstance(body["operationId"], str) and body["operationId"]
    assert body["totalItems"] == count and body["count"] == count


def bulk_error(response: Any, invalid: set[str]) -> None:
    """Kestra's ``BulkErrorResponse`` (400): nothing was applied."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["message"].startswith("invalid bulk")
    assert {item["invalidValue"] for item in body["invalids"]} == invalid
    assert all(item["message"] for item in body["invalids"])


BULK = [
    # action, method, a state it applies to, one it refuses, the executor input it sends
    ("kill", "DELETE", State.RUNNING, State.SUCCESS, Kill),
    ("restart", "POST", State.FAILED, State.RUNNING, Restart),
    ("replay", "POST", State.SUCCESS, State.RUNNING, NewExecution),  # RUNNING: replayed too
    ("resume", "POST", State.PAUSED, State.RUNNING, Resume),
    ("pause", "POST", State.RUNNING, State.PAUSED, ManualPause),
    ("unqueue", "POST", State.QUEUED, State.RUNNING, Dequeue),
    ("force-run", "POST", State.QUEUED, State.CANCELLED, Dequeue),
]


@pytest.mark.parametrize(("action", "method", "state", "refused_state", "message"), BULK)
def test_bulk_by_ids_and_by_query(
    client: TestClient,
    backends: Backends,
    hello: dict[str, Any],
    action: str,
    method: str,
    state: State,
    refused_state: State,
    message: type,
) -> None:
    runs = {
        State.FAILED: [("t1", "log", State.FAILED)],
        State.PAUSED: [("t1", "log", State.PAUSED)],
    }.get(state, [])
    save(
        backends,
        with_runs("a1", state, *runs),
        with_runs("a2", state, *runs),
        make_execution("other", namespace="elsewhere", state=state),
        make_execution("wrong", state=refused_state),
    )
    by_ids = f"{API}/{action}/by-ids"
    refused = client.request(method, by_ids, json=["a1", "wrong", "ghost"])
    # Kestra's replay refuses no state, only unknown executions (``replayByIds``)
    bulk_error(refused, {"ghost"} if action == "replay" else {"wrong", "ghost"})
    assert executor_inputs(backends) == []
    async_answer(client.request(method, by_ids, json=["a1", "a2"]), 2)
    sent = [m for m in executor_inputs(backends) if isinstance(m, message)]
    assert len(sent) == 2

    # by-query: Kestra's filters and the older parameters select the same executions
    by_query = f"{API}/{action}/by-query"
    fresh = [with_runs(f"b{i}", state, *runs) for i in (1, 2)]
    for execution in fresh:
        execution.labels = [Label(key="batch", value="q")]
    save(backends, *fresh)
    filters = {
        "filters[namespace][EQUALS]": "company.team",
        "filters[labels][EQUALS][batch]": "q",
        "filters[state][IN]": state.value,
    }
    async_answer(client.request(method, by_query, params=filters), 2)
    assert len([m for m in executor_inputs(backends) if isinstance(m, message)]) == 4
    nothing = client.request(method, by_query, params={"namespace": "nowhere"})
    async_answer(nothing, 0)
    unknown_filter = client.request(method, by_query, params={"filters[taskId][EQUALS]": "x"})
    assert unknown_filter.status_code == 400


# on Elasticsearch too: by-ids and by-query read the repository; the labels go to the executor
@both_repositories
def test_bulk_labels(client: TestClient, backends: Backends) -> None:
    save(
        backends,
        make_execution("l1", state=State.SUCCESS),
        make_execution("l2", state=State.FAILED),
        make_execution("l3", state=State.RUNNING),
    )
    labels = [{"key": "reviewed", "value": "yes"}]
    refused = client.post(
        f"{API}/labels/by-ids", json={"executionsId": ["l1", "l3"], "executionLabels": labels}
    )
    bulk_error(refused, {"l3"})
    ok = client.post(
        f"{API}/labels/by-ids", json={"executionsId": ["l1", "l2"], "executionLabels": labels}
    )
    async_answer(ok, 2)
    by_query = client.post(
        f"{API}/labels/by-query",
        params=[("state", "SUCCESS")],
        json=[{"key": "batch", "value": "2"}],
    )
    async_answer(by_query, 1)
    orders = executor_inputs(backends)
    assert all(isinstance(o, SetLabels) for o in orders)
    assert [(o.execution_id, [(x.key, x.value) for x in o.labels]) for o in orders] == [
        ("l1", [("reviewed", "yes")]),
        ("l2", [("reviewed", "yes")]),
        ("l1", [("batch", "2")]),
    ]


def test_bulk_delete(client: TestClient, backends: Backends) -> None:
    save(
        backends,
        make_execution("d1", state=State.SUCCESS),
        make_execution("d2", state=State.RUNNING),
        make_execution("d3", state=State.FAILED, namespace="to.delete"),
    )
    refused = client.request("DELETE", f"{API}/by-ids", json=["d1", "d2"])
    assert refused.status_code == 422
    assert {i["invalidValue"] for i in refused.json()["invalids"]} == {"d2"}
    assert client.get(f"{API}/d1").status_code == 200
    deleted = client.request(
        "DELETE", f"{API}/by-ids", json=["d1", "d2"], params={"includeNonTerminated": "true"}
    )
    assert deleted.status_code == 200 and deleted.json() == {"count": 2}
    assert client.get(f"{API}/d1").status_code == 404
    by_query = client.request(
        "DELETE", f"{API}/by-query", params={"filters[namespace][EQUALS]": "to.delete"}
    )
    assert by_query.status_code == 200 and by_query.json() == {"count": 1}
    assert client.get(f"{API}/d3").status_code == 404


# ---------------------------------------------------------------- listings


def test_executions_of_a_flow_and_executable_namespaces(
    client: TestClient, backends: Backends, hello: dict[str, Any]
) -> None:
    save(
        backends,
        make_execution("e1"),
        make_execution("e2"),
        make_execution("e3", flow_id="other"),
    )
    page = client.get(f"{API}", params={"namespace": "company.team", "flowId": "hello", "size": 1})
    assert page.status_code == 200, page.text
    body = page.json()
    assert set(body) == {"results", "total"} and len(body["results"]) == 1
    assert body["total"] == 2
    kestra_execution(body["results"][0])
    assert client.get(f"{API}", params={"namespace": "company.team"}).status_code == 422
    assert client.get(f"{API}/namespaces").json() == ["company.team"]
    flows = client.get(f"{API}/namespaces/company.team/flows").json()
    assert [(f["namespace"], f["id"]) for f in flows] == [("company.team", "hello")]
