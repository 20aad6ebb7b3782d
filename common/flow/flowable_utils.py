"""Kestra's flowable semantics as pure functions over an execution.

A flowable task run's children are matched to the tasks that declared them by
(task id, parent task run id, iteration value). Sequential children start one after the
other; parallel ones together (up to a concurrency); ``errors`` take over once a child failed,
and ``finally`` runs last whatever happened.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.models.execution import Execution, TaskRun
from common.models.state import State
from common.plugins.base import ResolvedTask

_RUNNING = frozenset({State.RUNNING, State.KILLING, State.PAUSED, State.RETRYING})
_CREATED = frozenset({State.CREATED, State.RESTARTED, State.QUEUED})


def is_task_run_for(resolved: ResolvedTask, task_run: TaskRun, parent: TaskRun | None) -> bool:
    return (
        resolved.task.id == task_run.task_id
        and (parent is None or parent.id == task_run.parent_task_run_id)
        and (resolved.value is None or resolved.value == task_run.value)
        and (resolved.iteration is None or resolved.iteration == task_run.iteration)
    )


def enabled(tasks: Sequence[ResolvedTask] | None) -> list[ResolvedTask]:
    return [t for t in tasks or () if not t.task.disabled]


def task_runs_for(
    execution: Execution, tasks: Sequence[ResolvedTask], parent: TaskRun | None
) -> list[TaskRun]:
    if not tasks:
        return []
    parent_id = parent.id if parent else None
    by_id: dict[str, list[ResolvedTask]] = {}
    for t in tasks:
        by_id.setdefault(t.task.id, []).append(t)
    out = []
    for tr in execution.task_run_list:
        if tr.parent_task_run_id != parent_id:
            continue
        # only the tasks of that id can match (was: every task, for every task run)
        candidates = by_id.get(tr.task_id)
        if candidates and any(is_task_run_for(t, tr, parent) for t in candidates):
            out.append(tr)
    return out


def is_terminated(
    execution: Execution, tasks: Sequence[ResolvedTask], parent: TaskRun | None
) -> bool:
    runs = task_runs_for(execution, tasks, parent)
    return sum(1 for tr in runs if tr.state.current.terminal) >= len(tasks)


def has_failed(execution: Execution, tasks: Sequence[ResolvedTask], parent: TaskRun | None) -> bool:
    return any(
        tr.state.current in (State.FAILED, State.KILLED)
        for tr in task_runs_for(execution, tasks, parent)
    )


def current_tasks(
    execution: Execution,
    tasks: Sequence[ResolvedTask],
    errors: Sequence[ResolvedTask] | None,
    finally_: Sequence[ResolvedTask] | None,
    parent: TaskRun | None,
) -> list[ResolvedTask]:
    """The branch to follow now: the tasks, the ``errors`` after a failure, then ``finally``."""
    tasks, errors, finally_ = enabled(tasks), enabled(errors), enabled(finally_)
    if finally_ and task_runs_for(execution, finally_, parent):
        return finally_
    if task_runs_for(execution, errors, parent) or has_failed(execution, tasks, parent):
        if errors and not is_terminated(execution, errors, parent):
            return errors
        if finally_:
            return finally_
        return errors
    if finally_ and is_terminated(execution, tasks, parent):
        return finally_
    return tasks


def guess_final_state(
    execution: Execution, tasks: Sequence[ResolvedTask], parent: TaskRun | None
) -> State:
    states = {tr.state.current for tr in task_runs_for(execution, tasks, parent)}
    for state in (State.KILLED, State.FAILED, State.WARNING, State.PAUSED):
        if state in states:
            return state
    return State.SUCCESS


def resolve_sequential_nexts(
    execution: Execution,
    tasks: Sequence[ResolvedTask],
    errors: Sequence[ResolvedTask] | None,
    finally_: Sequence[ResolvedTask] | None,
    parent: TaskRun | None,
) -> list[ResolvedTask]:
    current = current_tasks(execution, tasks, errors, finally_, parent)
    if not current:
        return []
    runs = task_runs_for(execution, current, parent)
    if not runs:
        return [current[0]]
    if any(tr.state.current in _CREATED or tr.state.current in _RUNNING for tr in runs):
        return []
    last = runs[-1]
    if last.state.current.terminal:
        index = next(
            (i for i, t in enumerate(current) if is_task_run_for(t, last, parent)), len(current)
        )
        if index + 1 < len(current):
            return [current[index + 1]]
    return []


def resolve_parallel_nexts(
    execution: Execution,
    tasks: Sequence[ResolvedTask],
    errors: Sequence[ResolvedTask] | None,
    finally_: Sequence[ResolvedTask] | None,
    parent: TaskRun | None,
    concurrency: int,
) -> list[ResolvedTask]:
    current = current_tasks(execution, tasks, errors, finally_, parent)
    runs = task_runs_for(execution, current, parent)
    not_created = [t for t in current if not any(is_task_run_for(t, tr, parent) for tr in runs)]
    if not not_created:
        return []
    if current is not tasks and (current == enabled(errors) or current == enabled(finally_)):
        # errors and finally branches run sequentially, as in Kestra
        return resolve_sequential_nexts(execution, tasks, errors, finally_, parent)
    active = sum(1 for tr in runs if not tr.state.current.terminal)
    if concurrency > 0:
        free = concurrency - active
        return not_created[: max(free, 0)]
    return not_created


def resolve_grouped_nexts(
    execution: Execution,
    tasks: Sequence[ResolvedTask],
    errors: Sequence[ResolvedTask] | None,
    finally_: Sequence[ResolvedTask] | None,
    parent: TaskRun | None,
    concurrency: int,
) -> list[ResolvedTask]:
    """ForEach: iterations (tasks grouped by value) run in parallel up to ``concurrency``
    (0 = all), the tasks of one iteration one after the other."""
    current = current_tasks(execution, tasks, errors, finally_, parent)
    if current is not tasks and current != enabled(tasks):
        return resolve_sequential_nexts(execution, tasks, errors, finally_, parent)
    groups: dict[str | None, list[ResolvedTask]] = {}
    for t in current:
        groups.setdefault(t.value, []).append(t)
    active = 0
    waiting: list[list[ResolvedTask]] = []
    nexts: list[ResolvedTask] = []
    for group in groups.values():
        runs = task_runs_for(execution, group, parent)
        if not runs:
            waiting.append(group)
            continue
        if is_terminated(execution, group, parent):
            continue
        active += 1
        nexts.extend(resolve_sequential_nexts(execution, group, None, None, parent))
    free = len(waiting) if concurrency <= 0 else max(concurrency - active, 0)
    for group in waiting[:free]:
        nexts.append(group[0])
    return nexts


def resolve_state(
    execution: Execution,
    tasks: Sequence[ResolvedTask],
    errors: Sequence[ResolvedTask] | None,
    finally_: Sequence[ResolvedTask] | None,
    parent: TaskRun | None,
) -> State | None:
    """The flowable's own state once its current branch ended, else None."""
    current = current_tasks(execution, tasks, errors, finally_, parent)
    all_tasks = [*enabled(tasks), *enabled(errors), *enabled(finally_)]
    parent_id = parent.id if parent else None
    if any(
        tr.parent_task_run_id == parent_id and not tr.state.current.terminal
        for tr in execution.task_run_list
    ):
        # a failure ends the branch early, but children already started (Parallel siblings)
        # finish first: a flowable never ends with a running child
        return None
    if current:
        if is_terminated(execution, current, parent):
            return guess_final_state(execution, all_tasks, parent)
        return None
    if has_failed(execution, enabled(tasks), parent) or not enabled(tasks):
        return guess_final_state(execution, all_tasks, parent)
    return None


def parents(execution: Execution, task_run: TaskRun) -> list[TaskRun]:
    """Ancestors of a task run, outermost first."""
    by_id = {tr.id: tr for tr in execution.task_run_list}
    out: list[TaskRun] = []
    current = task_run
    while current.parent_task_run_id and current.parent_task_run_id in by_id:
        current = by_id[current.parent_task_run_id]
        out.append(current)
    out.reverse()
    return out


def values_path(execution: Execution, task_run: TaskRun) -> list[str]:
    """Values of the enclosing iterations and its own, outermost first (Kestra's selector)."""
    return [tr.value for tr in [*parents(execution, task_run), task_run] if tr.value is not None]
