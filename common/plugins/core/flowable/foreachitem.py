"""ForEachItem: split a file of items into batches and run a subflow execution per batch.

As in Kestra (``io.kestra.plugin.core.flow.ForEachItem``), the task has three internal
children, run one after the other:

- ``<id>_split`` (``ForEachItemSplit``, on a worker): splits ``items`` (an internal-storage
  URI) by ``batch.rows`` (default 1), ``batch.bytes`` or ``batch.partitions``, whole lines;
  outputs ``splits``, the URI of a file listing the batch URIs one per line (Kestra's output),
  and what the executor derives them from (it does no I/O itself): ``batches`` (how many),
  ``batchPrefix`` and ``batchExtension`` (batch n is ``<batchPrefix><n>.<batchExtension>``),
  small whatever the number of batches.
- ``<id>_items`` (``ForEachItemExecutable``, in the executor): one execution of
  ``namespace``/``flowId`` per batch, whose ``inputs`` are rendered with ``taskrun.items`` (the
  batch's URI) and ``taskrun.iteration`` (1, 2, ...). Its outputs count the batches by state:
  ``numberOfBatches`` and ``iterations`` (``{"CREATED": 0, "RUNNING": 0, "SUCCESS": 26}``
  once all ended). With ``wait`` (default) it ends when every batch execution ended: with
  ``transmitFailed`` (default) FAILED if one failed, else KILLED if one was killed, WARNING if
  one warned, else SUCCESS. Without ``wait`` it ends SUCCESS once they are created.
- ``<id>_merge`` (``ForEachItemMergeOutputs``, on a worker): writes the flow outputs of every
  batch execution, one JSON object per line in batch order, to ``outputs.ion`` and outputs its
  URI as ``subflowOutputs`` (nothing when the subflow has no outputs).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr

from common.ids import new_id
from common.models.execution import TaskRun
from common.plugins.base import (
    ExecutableTask,
    FlowModel,
    ResolveContext,
    ResolvedTask,
    RunContext,
    RunnableTask,
    Task,
)
from common.plugins.dynamic import DynamicBool, DynamicPositive, resolve

from ._common import WithBranches

SPLIT_SUFFIX = "_split"
ITEMS_SUFFIX = "_items"
MERGE_SUFFIX = "_merge"
#: the split's output counting its batches (with ``batchPrefix`` and ``batchExtension``)
BATCHES = "batches"
#: variable the executor gives the merge task: the batch executions' outputs, in batch order
SUBFLOW_OUTPUTS_VARIABLE = "__subflowOutputs__"


class Batch(FlowModel):
    rows: DynamicPositive | None = None
    bytes: str | None = None
    partitions: DynamicPositive | None = None
    separator: str = "\n"


class ForEachItemSplit(RunnableTask):
    TYPE: ClassVar[str] = "lanner.core.flow.ForEachItem$ForEachItemSplit"
    items: str
    batch: Batch = Field(default_factory=Batch)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        from common.plugins.core._support import TaskFailed, worker_context
        from common.plugins.core.storage import split_lines

        wctx = worker_context(ctx)
        uri = str(ctx.render(self.items)).strip()
        if not uri.startswith(("lanner://", "kestra://")):
            raise TaskFailed(
                f"Unable to split the items from {uri}, this is not an internal storage URI!"
            )
        uri = uri.replace("kestra://", "lanner://", 1)
        batch = self.batch
        rows: int | None = resolve(batch.rows, ctx.render_typed)
        partitions: int | None = resolve(batch.partitions, ctx.render_typed)
        size = str(ctx.render(batch.bytes)) if batch.bytes else None
        if rows is None and partitions is None and size is None:
            rows = 1
        sep = batch.separator
        chunks = split_lines(ctx.get_file(uri).decode(), sep, rows, partitions, size)
        suffix = uri.rsplit(".", 1)[-1] if "." in uri.rsplit("/", 1)[-1] else "txt"
        # batch n is ``<batchPrefix><n>.<batchExtension>``: the executor derives every URI from
        # three small outputs, however many batches (a list of URIs outgrew the output limit)
        prefix = f"{wctx.base_uri}batches-{new_id()[:10]}/"
        uris = []
        for n, chunk in enumerate(chunks, start=1):
            uris.append(wctx.storage.put(f"{prefix}{n}.{suffix}", (sep.join(chunk) + sep).encode()))
        splits = wctx.put_data("splits.txt", "\n".join(uris).encode())
        return {
            "splits": splits,
            BATCHES: len(uris),
            "batchPrefix": prefix,
            "batchExtension": suffix,
        }


class ForEachItemExecutable(ExecutableTask):
    TYPE: ClassVar[str] = "lanner.core.flow.ForEachItem$ForEachItemExecutable"
    namespace: str
    flow_id: str = Field(alias="flowId")
    revision: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: Any = None
    wait: DynamicBool = True
    transmit_failed: DynamicBool = Field(default=True, alias="transmitFailed")
    inherit_labels: DynamicBool = Field(default=False, alias="inheritLabels")
    schedule_date: str | None = Field(default=None, alias="scheduleDate")

    @property
    def split_id(self) -> str:
        return self.id[: -len(ITEMS_SUFFIX)] + SPLIT_SUFFIX


class ForEachItemMergeOutputs(RunnableTask):
    TYPE: ClassVar[str] = "lanner.core.flow.ForEachItem$ForEachItemMergeOutputs"

    @property
    def items_id(self) -> str:
        return self.id[: -len(MERGE_SUFFIX)] + ITEMS_SUFFIX

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        from common.plugins.core._support import worker_context

        outputs = ctx.variables.get(SUBFLOW_OUTPUTS_VARIABLE) or []
        if not outputs:
            return None  # no batch, or a subflow without outputs: Kestra outputs nothing
        lines = "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in outputs)
        return {"subflowOutputs": worker_context(ctx).put_data("outputs.ion", lines.encode())}


class ForEachItem(WithBranches):
    TYPE: ClassVar[str] = "lanner.core.flow.ForEachItem"
    items: str = Field(min_length=1)
    batch: Batch = Field(default_factory=Batch)
    namespace: str = Field(min_length=1)
    flow_id: str = Field(alias="flowId", min_length=1)
    revision: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: Any = None
    wait: DynamicBool = True
    transmit_failed: DynamicBool = Field(default=True, alias="transmitFailed")
    inherit_labels: DynamicBool = Field(default=False, alias="inheritLabels")
    schedule_date: str | None = Field(default=None, alias="scheduleDate")
    _internal: list[Task] | None = PrivateAttr(default=None)

    def internal_tasks(self) -> list[Task]:
        """``<id>_split``, ``<id>_items`` and ``<id>_merge``, built once."""
        if self._internal is None:
            executable = ForEachItemExecutable.model_validate(
                {
                    "id": self.id + ITEMS_SUFFIX,
                    "type": ForEachItemExecutable.TYPE,
                    "namespace": self.namespace,
                    "flowId": self.flow_id,
                    "revision": self.revision,
                    "inputs": self.inputs,
                    "labels": self.labels,
                    "wait": self.wait,
                    "transmitFailed": self.transmit_failed,
                    "inheritLabels": self.inherit_labels,
                    "scheduleDate": self.schedule_date,
                }
            )
            self._internal = [
                ForEachItemSplit(
                    id=self.id + SPLIT_SUFFIX,
                    type=ForEachItemSplit.TYPE,
                    items=self.items,
                    batch=self.batch,
                ),
                executable,
                ForEachItemMergeOutputs(
                    id=self.id + MERGE_SUFFIX, type=ForEachItemMergeOutputs.TYPE
                ),
            ]
        return self._internal

    def all_child_tasks(self) -> list[Task]:
        return [*self.internal_tasks(), *self.errors, *self.finally_]

    def child_tasks(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        return [ResolvedTask(task=t, parent_id=parent.id) for t in self.internal_tasks()]

    def resolve_nexts(self, ctx: ResolveContext, parent: TaskRun) -> list[ResolvedTask]:
        from common.flow import flowable_utils as fu

        return fu.resolve_sequential_nexts(
            ctx.execution,
            self.child_tasks(ctx, parent),
            self.error_tasks(ctx, parent),
            self.finally_tasks(ctx, parent),
            parent,
        )


def terminal_state(iterations: dict[str, int]) -> str:
    """Kestra's ``ExecutableUtils.findTerminalState`` of the batch executions' states."""
    for state in ("FAILED", "KILLED", "WARNING"):
        if iterations.get(state, 0) > 0:
            return state
    return "SUCCESS"


def batch_uris(outputs: dict[str, Any]) -> list[str] | None:
    """The batch URIs of a split task's outputs (None: not a split's outputs)."""
    count, prefix = outputs.get(BATCHES), outputs.get("batchPrefix")
    extension = outputs.get("batchExtension")
    if not isinstance(count, int) or not isinstance(prefix, str) or not isinstance(extension, str):
        return None
    return [f"{prefix}{n}.{extension}" for n in range(1, count + 1)]
