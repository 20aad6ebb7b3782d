"""WorkingDirectory: run runnable tasks one after the other in one directory of one worker.

As in Kestra (``io.kestra.plugin.core.flow.WorkingDirectory``, run by ``Worker.handleTask``),
the executor sends the WorkingDirectory's task run to a worker as one unit. The worker prepares
the directory (``cache`` restored, ``namespaceFiles``, ``inputFiles``), runs each enabled child
in it in order, each as a task run of its own whose outputs are ``outputs.<child>...`` for the
next children and the rest of the flow, stops at the first failure (unless the child has
``allowFailure``), then stores ``outputFiles`` (output ``outputFiles``: name -> URI) and the
``cache``. The executor adds the children's task runs as their results arrive, and ends the
WorkingDirectory like a Sequential once the worker is done: ``errors`` run after a failure,
``finally`` last. A failure to prepare or to store fails it with no child run. Its ``retry``
governs the children without one (retried in the directory by the worker), its ``timeout``
bounds the whole run (``worker._working_dir``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from common.flow import flowable_utils as fu
from common.models.execution import TaskRun
from common.models.state import State
from common.plugins.base import FlowModel, ResolveContext, ResolvedTask, RunnableTask
from common.plugins.dynamic import DynamicBool, DynamicDuration

from ._common import WithChildren

#: the variable of a WorkingDirectory's WorkerTask that carries the retry policy its tasks
#: inherit (its own, an enclosing task's or the flow's), resolved by the executor
RETRY_VARIABLE = "__retry__"


class Cache(FlowModel):
    patterns: list[str] = Field(min_length=1)
    ttl: DynamicDuration | None = None


class NamespaceFilesOptions(FlowModel):
    enabled: DynamicBool = True
    include: list[str] | None = None
    exclude: list[str] | None = None
    namespaces: list[str] | None = None
    folder_per_namespace: bool = Field(default=False, alias="folderPerNamespace")
    if_exists: str | None = Field(default=None, alias="ifExists")


class WorkingDirectory(WithChildren):
    TYPE: ClassVar[str] = "lanner.core.flow.WorkingDirectory"
    cache: Cache | None = None
    namespace_files: NamespaceFilesOptions | None = Field(default=None, alias="namespaceFiles")
    input_files: dict[str, str] | str | None = Field(default=None, alias="inputFiles")
    output_files: list[str] | None = Field(default=None, alias="outputFiles")

    @model_validator(mode="after")
    def _runnable_children(self) -> WorkingDirectory:
        # Kestra's WorkingDirectoryTaskValidator
        if not self.tasks:
            raise ValueError("The 'tasks' property cannot be empty")
        if any(not isinstance(t, RunnableTask) for t in self.tasks):
            raise ValueError(
                "Only runnable tasks are allowed as children of a WorkingDirectory task"
            )
        if any(t.worker_group is not None for t in self.tasks):
            raise ValueError(
                "Cannot set a Worker Group in any WorkingDirectory sub-tasks, it is only "
                "supported at the WorkingDirectory level"
            )
        return self

    @staticmethod
    def worker_done(parent: TaskRun) -> State | None:
        """The state the worker reported for the directory's run, None while it runs."""
        if not parent.attempts or not parent.attempts[-1].state.current.terminal:
            return None
        return parent.attempts[-1].state.current

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        done = self.worker_done(parent)
        if done is None:
            return []  # the worker runs the tasks
        children = self.child_tasks(ctx, parent)
        if done != State.SUCCESS and not fu.has_failed(ctx.execution, children, parent):
            return []  # failed before or after its tasks: nothing more to run
        return self._sequential(ctx, parent)

    def resolve_state(self, ctx: ResolveContext, parent: TaskRun) -> State | None:
        done = self.worker_done(parent)
        if done is None:
            return None
        children = self.child_tasks(ctx, parent)
        if done != State.SUCCESS and not fu.has_failed(ctx.execution, children, parent):
            return done
        return super().resolve_state(ctx, parent)

    def outputs(self, ctx: ResolveContext, parent: TaskRun) -> dict[str, Any] | None:
        return None  # the worker's (``outputFiles``) are already on the task run
