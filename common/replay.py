"""Replay: a new execution that re-runs a past one from a given task run (Kestra's replay)."""

from __future__ import annotations

from datetime import datetime

from common.errors import NotFoundError
from common.models.execution import (
    Execution,
    ExecutionMetadata,
    StateEntry,
    StateInfo,
    TaskRun,
)
from common.models.flow import Flow
from common.models.state import State


def _ancestors(execution: Execution, task_run: TaskRun) -> set[str]:
    out: set[str] = set()
    parent_id = task_run.parent_task_run_id
    while parent_id and parent_id not in out:
        out.add(parent_id)
        parent = execution.find_task_run(parent_id)
        parent_id = parent.parent_task_run_id if parent else None
    return out


def replay(
    execution: Execution,
    flow: Flow,
    task_run_id: str | None,
    new_id: str,
    now: datetime,
) -> Execution:
    """A copy of ``execution`` under ``new_id`` that restarts at ``task_run_id``.

    Task runs created before the given one are kept (its parents are set back to RUNNING so
    the executor resolves them again); it and everything after are dropped. Without a task run
    the whole execution starts over. The copy points to the replayed execution (``parentId``)
    and to the first one of the chain (``originalId``).

    Raises:
        NotFoundError: the task run is not part of the execution.
    """
    kept: list[TaskRun] = []
    if task_run_id is not None:
        target = execution.find_task_run(task_run_id)
        if target is None:
            raise NotFoundError(f"task run '{task_run_id}' not found in execution '{execution.id}'")
        parents = _ancestors(execution, target)
        for task_run in execution.task_run_list:
            if task_run.id == target.id:
                break
            copy = task_run.model_copy(deep=True, update={"execution_id": new_id})
            if task_run.id in parents:
                copy.outputs = None
                copy.set_state(State.RUNNING, now)
            kept.append(copy)
        state = State.RESTARTED
    else:
        state = State.CREATED
    histories = [StateEntry(state=State.CREATED, date=now)]
    if state != State.CREATED:
        histories.append(StateEntry(state=state, date=now))
    return execution.model_copy(
        deep=True,
        update={
            "id": new_id,
            "flow_revision": flow.revision or execution.flow_revision,
            "task_run_list": kept,
            "outputs": None,
            "parent_id": execution.id,
            "original_id": execution.original_id or execution.id,
            "state": StateInfo(current=state, histories=histories),
            "metadata": ExecutionMetadata(
                attempt_number=execution.metadata.attempt_number + 1,
                original_created_date=execution.metadata.original_created_date
                or execution.state.start_date,
            ),
            "sequence": 0,
            "deleted": False,
        },
    )
