"""A flow's topology in the shape of Kestra's ``GET /api/v1/flows/{namespace}/{id}/graph``.

``nodes`` (tasks, triggers, and a start and an end per cluster), ``edges`` (with their relation:
SEQUENTIAL, PARALLEL, CHOICE with the branch's value, ERROR, FINALLY) and ``clusters`` (each
flowable task and the nodes inside it, with its parents). The UI lays it out and draws it; it
parses no flow source itself. Children come from the task's own fields, so a new flowable is
drawn as a sequence of its children until it says otherwise here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query

from common.errors import NotFoundError
from common.flow.parser import parse_flow
from common.models.flow import Flow
from webserver.deps import BackendsDep, TenantDep

router = APIRouter(tags=["flows"])

_HIERARCHY = "io.kestra.core.models.hierarchies."
TASK_NODE = _HIERARCHY + "GraphTask"
TRIGGER_NODE = _HIERARCHY + "GraphTrigger"
CLUSTER_ROOT = _HIERARCHY + "GraphClusterRoot"
CLUSTER_END = _HIERARCHY + "GraphClusterEnd"
CLUSTER = _HIERARCHY + "GraphCluster"

# flowables whose children run side by side rather than one after another
_PARALLEL_TYPES = ("Parallel", "EachParallel")


@dataclass
class _Graph:
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)

    def node(self, uid: str, kind: str, task: Any = None, **extra: Any) -> str:
        body: dict[str, Any] = {"uid": uid, "type": kind, **extra}
        if task is not None:
            body["task"] = {"id": task.id, "type": task.type}
        self.nodes.append(body)
        return uid

    def edge(self, source: str, target: str, relation: str, value: str | None = None) -> None:
        rel: dict[str, Any] = {"relationType": relation}
        if value is not None:
            rel["value"] = value
        self.edges.append({"source": source, "target": target, "relation": rel})


def _short_type(task: Any) -> str:
    return str(getattr(task, "TYPE", task.type)).rsplit(".", 1)[-1]


def _branches(task: Any) -> list[tuple[str, str | None, list[Any]]]:
    """(relation, value, tasks) of each branch inside a flowable; empty for a runnable task."""
    kind = _short_type(task)
    out: list[tuple[str, str | None, list[Any]]] = []
    if kind == "If":
        out += [("CHOICE", "then", list(task.then)), ("CHOICE", "else", list(task.else_))]
    elif kind == "Switch":
        out += [("CHOICE", key, list(tasks)) for key, tasks in task.cases.items()]
        out.append(("CHOICE", "defaults", list(task.defaults)))
    elif kind in _PARALLEL_TYPES or (kind == "ForEach" and task.concurrency_limit != 1):
        out += [("PARALLEL", None, [child]) for child in task.tasks]
    elif kind != "Dag" and isinstance(getattr(task, "tasks", None), list):
        out.append(("SEQUENTIAL", None, list(task.tasks)))
    out.append(("ERROR", None, list(getattr(task, "errors", []) or [])))
    out.append(("FINALLY", None, list(getattr(task, "finally_", []) or [])))
    return [(relation, value, tasks) for relation, value, tasks in out if tasks]


def _is_flowable(task: Any) -> bool:
    return bool(_branches(task)) or _short_type(task) == "Dag"


def _add_task(graph: _Graph, task: Any, parents: list[str]) -> tuple[str, str, list[str]]:
    """Adds ``task`` (and its children); returns its entry uid, exit uid and the uids it holds."""
    if not _is_flowable(task):
        uid = graph.node(task.id, TASK_NODE, task)
        return uid, uid, [uid]
    cluster_uid = f"cluster_{task.id}"
    inner_parents = [*parents, cluster_uid]
    root = graph.node(task.id, CLUSTER_ROOT, task)
    end = graph.node(f"{task.id}.end", CLUSTER_END)
    members = [root, end]
    if _short_type(task) == "Dag":
        members += _add_dag(graph, task, root, end, inner_parents)
    for relation, value, tasks in _branches(task):
        first, last, held = _add_sequence(graph, tasks, inner_parents)
        members += held
        graph.edge(root, first, relation, value)
        graph.edge(last, end, relation if relation in ("ERROR", "FINALLY") else "SEQUENTIAL")
    graph.clusters.append(
        {
            "cluster": {
                "uid": cluster_uid,
                "type": CLUSTER,
                "taskNode": {"uid": root, "task": {"id": task.id, "type": task.type}},
            },
            "nodes": members,
            "parents": parents,
            "start": root,
            "end": end,
        }
    )
    return root, end, members


def _add_dag(graph: _Graph, dag: Any, root: str, end: str, parents: list[str]) -> list[str]:
    held: list[str] = []
    exits: dict[str, str] = {}
    needed: set[str] = set()
    for item in dag.tasks:
        first, last, inner = _add_task(graph, item.task, parents)
        held += inner
        exits[item.task.id] = last
        if not item.depends_on:
            graph.edge(root, first, "PARALLEL")
        for need in item.depends_on:
            needed.add(need)
            graph.edge(exits.get(need, need), first, "SEQUENTIAL")
    for task_id, last in exits.items():
        if task_id not in needed:
            graph.edge(last, end, "SEQUENTIAL")
    return held


def _add_sequence(
    graph: _Graph, tasks: list[Any], parents: list[str]
) -> tuple[str, str, list[str]]:
    first = last = ""
    held: list[str] = []
    for task in tasks:
        entry, exit_, inner = _add_task(graph, task, parents)
        held += inner
        if last:
            graph.edge(last, entry, "SEQUENTIAL")
        first = first or entry
        last = exit_
    return first, last, held


def flow_graph(flow: Flow) -> dict[str, Any]:
    graph = _Graph()
    start = graph.node("root.start", CLUSTER_ROOT)
    end = graph.node("root.end", CLUSTER_END)
    if flow.triggers:
        trigger_uids = [
            graph.node(f"trigger.{t.id}", TRIGGER_NODE, trigger={"id": t.id, "type": t.type})
            for t in flow.triggers
        ]
        for uid in trigger_uids:
            graph.edge(uid, start, "SEQUENTIAL")
        graph.clusters.append(
            {
                "cluster": {"uid": "cluster_root.Triggers", "type": CLUSTER},
                "nodes": trigger_uids,
                "parents": [],
                "start": trigger_uids[0],
                "end": trigger_uids[-1],
            }
        )
    first, last, _ = _add_sequence(graph, list(flow.tasks), [])
    graph.edge(start, first, "SEQUENTIAL")
    graph.edge(last, end, "SEQUENTIAL")
    for relation, tasks in (("ERROR", flow.errors), ("FINALLY", flow.finally_)):
        if tasks:
            branch_first, branch_last, _ = _add_sequence(graph, list(tasks), [])
            graph.edge(start, branch_first, relation)
            graph.edge(branch_last, end, relation)
    return {"nodes": graph.nodes, "edges": graph.edges, "clusters": graph.clusters}


@router.get("/flows/{namespace}/{flow_id}/graph", summary="A flow's topology (Kestra's shape)")
async def get_flow_graph(
    namespace: str,
    flow_id: str,
    backends: BackendsDep,
    tenant: TenantDep,
    revision: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        record = backends.repositories.flows.get(tenant, namespace, flow_id, revision)
        if record is None:
            what = f" revision {revision}" if revision else ""
            raise NotFoundError(f"flow {namespace}.{flow_id}{what} not found")
        return flow_graph(parse_flow(record.source))

    return await anyio.to_thread.run_sync(build)
