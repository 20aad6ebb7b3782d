"""Property test of the executor core: random nested flows, random task outcomes.

The expected final state comes from a small oracle written from Kestra's documented rules,
not from the core's code: a flowable's state is the worst of its children's (FAILED > WARNING >
SUCCESS), `errors` run only after a failure and never clear it, `finally` always runs and counts,
AllowFailure and `allowFailure` turn FAILED into WARNING, retries re-run a failed leaf up to
`maxAttempt` attempts. Whatever a failure stops from starting could only have made things worse,
so "worst over every child" is also the state of a branch cut short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from common.models.messages import WorkerTask
from common.models.state import State

from .harness import Sim

_RANK = {State.SUCCESS: 0, State.WARNING: 1, State.FAILED: 2}
_LEAF_STATES = [State.SUCCESS, State.WARNING, State.FAILED]


def _worst(states: list[State]) -> State:
    return max(states, key=lambda s: _RANK[s], default=State.SUCCESS)


@dataclass
class Node:
    kind: (
        str  # leaf-return, leaf-fail, Sequential, Parallel, ForEach, If, Switch, AllowFailure, Dag
    )
    id: str
    children: list[Node] = field(default_factory=list)
    # If: `else` children; Switch: the selected case is `children`, others are `other`
    other: list[Node] = field(default_factory=list)
    errors: list[Node] = field(default_factory=list)
    finally_: list[Node] = field(default_factory=list)
    allow_failure: bool = False
    max_attempt: int = 0  # 0 = no retry
    disabled: bool = False
    option: Any = None  # Parallel concurrent, ForEach (values, limit), If condition, Switch pick

    def to_yaml(self) -> dict[str, Any]:
        task: dict[str, Any] = {"id": self.id}
        if self.kind == "leaf-return":
            task |= {"type": "io.kestra.plugin.core.debug.Return", "format": self.id}
        elif self.kind == "leaf-fail":
            task |= {"type": "io.kestra.plugin.core.execution.Fail"}
        else:
            task["type"] = f"io.kestra.plugin.core.flow.{self.kind}"
            kids = [c.to_yaml() for c in self.children]
            others = [c.to_yaml() for c in self.other]
            if self.kind == "Parallel":
                task |= {"tasks": kids, "concurrent": self.option}
            elif self.kind == "ForEach":
                task |= {
                    "tasks": kids,
                    "values": self.option[0],
                    "concurrencyLimit": self.option[1],
                }
            elif self.kind == "If":
                # `children` are the branch the condition selects
                task["condition"] = "{{ " + str(self.option).lower() + " }}"
                if self.option:
                    task |= {"then": kids, "else": others}
                else:
                    never = {"id": f"{self.id}never", "type": "io.kestra.plugin.core.log.Log"}
                    task |= {"then": others or [never | {"message": "x"}], "else": kids}
            elif self.kind == "Switch":
                task |= {"value": self.option, "cases": {"picked": kids, "other": others}}
                if self.option == "nomatch":
                    task |= {"cases": {"other": others}, "defaults": kids}
            elif self.kind == "Dag":
                task["tasks"] = [
                    {"task": k, **({"dependsOn": [kids[i - 1]["id"]]} if i % 2 else {})}
                    for i, k in enumerate(kids)
                ]
            else:
                task["tasks"] = kids
            if self.errors:
                task["errors"] = [c.to_yaml() for c in self.errors]
            if self.finally_:
                task["finally"] = [c.to_yaml() for c in self.finally_]
        if self.allow_failure:
            task["allowFailure"] = True
        if self.max_attempt:
            task["retry"] = {"type": "constant", "interval": "PT1S", "maxAttempt": self.max_attempt}
        if self.disabled:
            task["disabled"] = True
        return task


# ------------------------------------------------------------------ strategy


@st.composite
def _nodes(draw: st.DrawFn, depth: int, counter: list[int], in_dag: bool = False) -> Node:
    counter[0] += 1
    nid = f"t{counter[0]}"
    kinds = ["leaf-return", "leaf-return", "leaf-return", "leaf-fail"]
    if depth > 0:
        kinds += ["Sequential", "Parallel", "ForEach", "If", "Switch", "AllowFailure", "Dag"]
    kind = draw(st.sampled_from(kinds))
    node = Node(kind=kind, id=nid)
    if kind.startswith("leaf"):
        if draw(st.integers(0, 3)) == 0:
            node.max_attempt = draw(st.integers(2, 3))
        node.disabled = not in_dag and draw(st.integers(0, 9)) == 0
    else:

        def kids(lo: int, hi: int, dag: bool = False) -> list[Node]:
            return draw(st.lists(_nodes(depth - 1, counter, dag), min_size=lo, max_size=hi))

        node.children = kids(1, 3, kind == "Dag")
        if kind == "Parallel":
            node.option = draw(st.integers(0, 2))
        elif kind == "ForEach":
            values = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=0, max_size=2))
            node.option = (values, draw(st.integers(0, 2)))
        elif kind == "If":
            node.option = draw(st.booleans())
            node.other = kids(0, 2)
        elif kind == "Switch":
            node.option = draw(st.sampled_from(["picked", "nomatch"]))
            node.other = kids(1, 2)
        if draw(st.integers(0, 3)) == 0:
            node.errors = kids(1, 2)
        if draw(st.integers(0, 3)) == 0:
            node.finally_ = kids(1, 2)
    node.allow_failure = not in_dag and draw(st.integers(0, 5)) == 0
    return node


@st.composite
def _flows(draw: st.DrawFn) -> tuple[list[Node], list[Node], list[Node]]:
    counter = [0]
    tasks = draw(st.lists(_nodes(3, counter), min_size=1, max_size=3))
    errors = draw(st.lists(_nodes(1, counter), max_size=2)) if draw(st.booleans()) else []
    finally_ = draw(st.lists(_nodes(1, counter), max_size=2)) if draw(st.booleans()) else []
    return tasks, errors, finally_


# ------------------------------------------------------------------ oracle


class Oracle:
    def __init__(self, outcomes: dict[tuple[str, int], State]) -> None:
        self.outcomes = outcomes
        self.attempts: dict[str, int] = {}

    def leaf_outcome(self, node: Node, attempt: int) -> State:
        if node.kind == "leaf-fail":
            return State.FAILED
        return self.outcomes.get((node.id, attempt), State.SUCCESS)

    def state(self, node: Node) -> State | None:
        """The node's final state, None when it creates no task run (disabled, no iteration)."""
        if node.disabled:
            return None
        if node.kind.startswith("leaf"):
            attempts = max(node.max_attempt, 1)
            result = State.FAILED
            for attempt in range(1, attempts + 1):
                result = self.leaf_outcome(node, attempt)
                self.attempts[node.id] = attempt
                if result != State.FAILED:
                    break
        else:
            result = self.block(node.children, node.errors, node.finally_)
            if node.kind == "ForEach" and not node.option[0]:
                result = self.block([], node.errors, node.finally_)
            if node.kind == "AllowFailure" and result == State.FAILED:
                result = State.WARNING
        if node.allow_failure and result == State.FAILED:
            result = State.WARNING
        return result

    def block(self, tasks: list[Node], errors: list[Node], finally_: list[Node]) -> State:
        main = _worst([s for s in map(self.state, tasks) if s is not None])
        states = [main]
        if main == State.FAILED:
            states += [s for s in map(self.state, errors) if s is not None]
        states += [s for s in map(self.state, finally_) if s is not None]
        return _worst(states)


# ------------------------------------------------------------------ the property


def _leaves(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    for n in nodes:
        if n.kind.startswith("leaf"):
            out.append(n)
        out += _leaves(n.children + n.other + n.errors + n.finally_)
    return out


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(flow=_flows(), data=st.data())
def test_random_flows_terminate_in_the_expected_state(
    flow: tuple[list[Node], list[Node], list[Node]], data: st.DataObject
) -> None:
    tasks, errors, finally_ = flow
    leaves = [n for n in _leaves(tasks + errors + finally_) if n.kind == "leaf-return"]
    outcomes: dict[tuple[str, int], State] = {}
    for leaf in leaves:
        for attempt in range(1, max(leaf.max_attempt, 1) + 1):
            outcomes[(leaf.id, attempt)] = data.draw(
                st.sampled_from(_LEAF_STATES), label=f"{leaf.id}#{attempt}"
            )

    source: dict[str, Any] = {"id": "prop", "namespace": "ns"}
    source["tasks"] = [n.to_yaml() for n in tasks]
    if errors:
        source["errors"] = [n.to_yaml() for n in errors]
    if finally_:
        source["finally"] = [n.to_yaml() for n in finally_]

    def outcome(wt: WorkerTask) -> tuple[State, dict[str, Any] | None, str | None]:
        tid = wt.task_run.task_id
        if wt.task["type"].endswith("Fail"):
            return State.FAILED, None, "Fail"
        state = outcomes.get((tid, wt.attempt), State.SUCCESS)
        return state, {"value": tid}, "failed" if state == State.FAILED else None

    sim = Sim(outcome=outcome)
    sim.deploy(yaml.safe_dump(source, sort_keys=False))
    eid = sim.create("ns", "prop")
    sim.run(max_steps=20_000)
    ex = sim.execution(eid)

    assert ex.state.current.terminal, ex.state.current
    assert [tr.task_id for tr in ex.task_run_list if not tr.state.current.terminal] == []
    keys = [(tr.task_id, tr.parent_task_run_id, tr.value) for tr in ex.task_run_list]
    assert len(keys) == len(set(keys)), "duplicate task runs"

    oracle = Oracle(outcomes)
    expected = oracle.block(tasks, errors, finally_)
    event(f"final state {expected.value}, {len(ex.task_run_list) // 10 * 10}+ task runs")
    assert ex.state.current == expected, yaml.safe_dump(source, sort_keys=False)

    disabled = {n.id for n in _leaves(tasks + errors + finally_) if n.disabled}
    for tr in ex.task_run_list:
        assert tr.task_id not in disabled
        if tr.task_id in oracle.attempts:
            assert len(tr.attempts) == oracle.attempts[tr.task_id], tr.task_id
