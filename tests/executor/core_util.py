"""Helpers shared by the executor core's unit tests: build small flows and run them in `Sim`."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

from common.models.execution import Execution, TaskRun
from common.models.messages import WorkerTask
from common.models.state import State

from .harness import Sim

RETURN = "io.kestra.plugin.core.debug.Return"
FAIL = "io.kestra.plugin.core.execution.Fail"
LOG = "io.kestra.plugin.core.log.Log"
FLOW = "io.kestra.plugin.core.flow"


def flow_yaml(body: str, flow_id: str = "f", namespace: str = "ns") -> str:
    """A flow source: ``body`` (indented YAML for everything after id/namespace)."""
    return f"id: {flow_id}\nnamespace: {namespace}\n" + textwrap.dedent(body)


def run(
    body: str,
    inputs: dict[str, Any] | None = None,
    outcome: Callable[[WorkerTask], Any] | None = None,
    sim: Sim | None = None,
) -> tuple[Sim, Execution]:
    """Deploy ``body`` as flow ns.f, create one execution, run it to the end."""
    s = sim or Sim()
    if outcome is not None:
        s.outcome = outcome
    s.deploy(flow_yaml(body))
    eid = s.create("ns", "f", inputs)
    s.run()
    return s, s.execution(eid)


def runs(ex: Execution, task_id: str) -> list[TaskRun]:
    return [tr for tr in ex.task_run_list if tr.task_id == task_id]


def one(ex: Execution, task_id: str) -> TaskRun:
    found = runs(ex, task_id)
    assert len(found) == 1, f"{task_id}: {len(found)} task runs"
    return found[0]


def state_of(ex: Execution, task_id: str) -> State:
    return one(ex, task_id).state.current


def states(ex: Execution) -> dict[str, State]:
    """task id -> state, for flows where every task id has one task run."""
    out: dict[str, State] = {}
    for tr in ex.task_run_list:
        assert tr.task_id not in out, f"{tr.task_id} has several task runs"
        out[tr.task_id] = tr.state.current
    return out


def order(ex: Execution) -> list[str]:
    """Task ids in the order their task runs were created."""
    return [tr.task_id for tr in ex.task_run_list]


def history(tr: TaskRun | Execution) -> list[State]:
    return [h.state for h in tr.state.histories]


def non_terminal(ex: Execution) -> list[TaskRun]:
    return [tr for tr in ex.task_run_list if not tr.state.current.terminal]


def fail_ids(*task_ids: str) -> Callable[[WorkerTask], Any]:
    """An outcome: the given task ids fail, the rest succeed."""

    def outcome(wt: WorkerTask) -> Any:
        tid = wt.task_run.task_id
        if tid in task_ids:
            return (State.FAILED, None, f"{tid} failed")
        return (State.SUCCESS, {}, None)

    return outcome
