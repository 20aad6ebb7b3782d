"""Dag: tasks start once every task they depend on ended without failing."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from common.flow import flowable_utils as fu
from common.models.execution import TaskRun
from common.models.state import State
from common.plugins import dynamic
from common.plugins.base import FlowModel, ResolveContext, ResolvedTask, Task
from common.plugins.dynamic import DynamicCount
from common.plugins.registry import AnyTask

from ._common import WithBranches, resolve


class DagTask(FlowModel):
    task: AnyTask
    depends_on: list[str] = Field(default_factory=list, alias="dependsOn")


class Dag(WithBranches):
    TYPE: ClassVar[str] = "lanner.core.flow.Dag"
    tasks: list[DagTask] = Field(min_length=1)
    concurrent: DynamicCount = 0

    @model_validator(mode="after")
    def _acyclic(self) -> Dag:
        ids = [t.task.id for t in self.tasks]
        deps = {t.task.id: list(t.depends_on) for t in self.tasks}
        for task_id, needs in deps.items():
            for need in needs:
                if need not in deps:
                    raise ValueError(
                        f"task '{task_id}' depends on '{need}', which is not in the Dag"
                    )
        state: dict[str, int] = {}

        def visit(node: str, path: list[str]) -> None:
            if state.get(node) == 1:
                cycle = path[path.index(node) :] + [node]
                raise ValueError(f"the Dag has a cycle: {' -> '.join(cycle)}")
            if state.get(node) == 2:
                return
            state[node] = 1
            for need in deps[node]:
                visit(need, [*path, node])
            state[node] = 2

        for node in ids:
            visit(node, [])
        return self

    def all_child_tasks(self) -> list[Task]:
        return [*(t.task for t in self.tasks), *self.errors, *self.finally_]

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return resolve([t.task for t in self.tasks], parent)

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        tasks = self.child_tasks(ctx, parent)
        errors = self.error_tasks(ctx, parent)
        finally_ = self.finally_tasks(ctx, parent)
        current = fu.current_tasks(ctx.execution, tasks, errors, finally_, parent)
        if current != fu.enabled(tasks):
            return fu.resolve_sequential_nexts(ctx.execution, tasks, errors, finally_, parent)
        runs = {tr.task_id: tr for tr in fu.task_runs_for(ctx.execution, current, parent)}
        active = sum(1 for tr in runs.values() if not tr.state.current.terminal)
        done_ok = {
            tid
            for tid, tr in runs.items()
            if tr.state.current in (State.SUCCESS, State.WARNING, State.SKIPPED)
        }
        disabled = {t.task.id for t in self.tasks if t.task.disabled}
        ready = []
        for dag_task in self.tasks:
            tid = dag_task.task.id
            if tid in runs or dag_task.task.disabled:
                continue
            if all(d in done_ok or d in disabled for d in dag_task.depends_on):
                ready.append(ResolvedTask(task=dag_task.task, parent_id=parent.id))
        concurrent: int = dynamic.resolve(self.concurrent, lambda v: ctx.render_typed(v, parent))
        if concurrent > 0:
            ready = ready[: max(concurrent - active, 0)]
        return ready
