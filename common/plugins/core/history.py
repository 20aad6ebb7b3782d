"""Core plugins that read or purge execution history: ``lanner.core.execution.Count``,
``lanner.core.log.Fetch``, ``lanner.core.log.PurgeLogs``, ``lanner.core.execution.PurgeExecutions``
(Kestra's classes of the same names).

They run on a worker and reach the repository through the worker context's ``repositories()``
(the only tasks that do). What they read is what the indexer has copied there: an execution's
own last logs may not be in it yet, as on Kestra, whose test flows sleep before ``Fetch``.
Purges delete through the repository (an execution leaves a tombstone, as the API's delete does,
so a late snapshot from the indexer cannot bring it back) and the execution's storage folder.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from common.models.state import State
from common.plugins.base import FlowModel, RunContext, RunnableTask
from common.plugins.dynamic import DynamicPositive, resolve
from common.repository.base import MAX_PAGE_SIZE, ExecutionQuery, LogPurge, LogQuery

from . import _rows
from ._support import TaskFailed, worker_context
from .log import normalize_level

_ZONE_ID = re.compile(r"\[[^\]]*\]$")  # Java's ZonedDateTime.toString() ends with [Europe/Paris]


def _date(ctx: RunContext, value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    text = _ZONE_ID.sub("", str(ctx.render(value)).strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TaskFailed(f"'{name}': '{text}' is not an ISO-8601 date-time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _states(values: list[str] | None) -> list[State]:
    return [State(v) for v in values or []]


def _check_states(values: list[str] | None) -> list[str] | None:
    for value in values or []:
        try:
            State(value)
        except ValueError:
            raise ValueError(f"unknown state '{value}'") from None
    return values


class CountFlow(FlowModel):
    namespace: str
    flow_id: str = Field(alias="flowId")


class Count(RunnableTask):
    """Counts the executions of ``flows`` (each listed flow, 0 when none) or of ``namespaces``
    (each namespace exactly) started between ``startDate`` and ``endDate`` (default: now), in
    ``states``; keeps the rows for which ``expression`` (with ``count``) renders ``true``.
    Outputs ``results`` (``namespace``, ``flowId``, ``count``) and their ``total``."""

    TYPE: ClassVar[str] = "lanner.core.execution.Count"
    flows: list[CountFlow] | None = None
    namespaces: list[str] | None = None
    states: list[str] | None = None
    start_date: str = Field(alias="startDate")
    end_date: str | None = Field(default=None, alias="endDate")
    expression: str

    @field_validator("states")
    @classmethod
    def _states_valid(cls, values: list[str] | None) -> list[str] | None:
        return _check_states(values)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        wctx = worker_context(ctx)
        if self.flows is None and self.namespaces is None:
            raise TaskFailed("You must provide a list of flows or namespaces")
        repository = wctx.repositories().executions
        start = _date(ctx, self.start_date, "startDate") or datetime.now(UTC) - timedelta(days=30)
        end = _date(ctx, self.end_date, "endDate") or datetime.now(UTC)

        def count(namespace: str, flow_id: str | None) -> int:
            query = ExecutionQuery(
                tenant_id=wctx.tenant_id,
                namespace=namespace,
                flow_id=flow_id,
                states=_states(self.states),
                start_date=start,
                end_date=end,
            )
            return sum(c.count for c in repository.count_by_flow(query) if c.namespace == namespace)

        rows: list[dict[str, Any]] = [
            {"namespace": f.namespace, "flowId": f.flow_id, "count": count(f.namespace, f.flow_id)}
            for f in self.flows or []
        ]
        rows += [
            {"namespace": n, "flowId": None, "count": count(n, None)} for n in self.namespaces or []
        ]
        kept = [
            row
            for row in rows
            if str(wctx.render_with(self.expression, {"count": row["count"]})).strip() == "true"
        ]
        return {"results": kept, "total": sum(row["count"] for row in kept)}


class Fetch(RunnableTask):
    """Writes the logs of an execution (this one by default) at ``level`` or above, of the
    tasks ``tasksId`` if given, to a row file (one log entry per line, oldest first); outputs
    its ``uri`` and ``size`` (how many rows)."""

    TYPE: ClassVar[str] = "lanner.core.log.Fetch"
    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    execution_id: str | None = Field(default=None, alias="executionId")
    tasks_id: list[str] | None = Field(default=None, alias="tasksId")
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        return normalize_level(value)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        wctx = worker_context(ctx)
        logs = wctx.repositories().logs
        flow = ctx.variables.get("flow") or {}
        execution = ctx.variables.get("execution") or {}
        execution_id = str(ctx.render(self.execution_id or "")) or str(execution.get("id", ""))
        namespace = flow.get("namespace")
        flow_id = flow.get("id")
        if self.execution_id is not None:  # another execution: of this flow unless named
            namespace = str(ctx.render(self.namespace)) if self.namespace else namespace
            flow_id = str(ctx.render(self.flow_id)) if self.flow_id else flow_id
        size = 0
        target = _rows.temp_output(wctx, ".ion")
        with open(target, "w", encoding="utf-8") as out:
            task_ids: list[str | None] = [*self.tasks_id] if self.tasks_id else [None]
            for task_id in task_ids:
                after: str | None = None
                while True:
                    page = logs.search(
                        LogQuery(
                            tenant_id=wctx.tenant_id,
                            namespace=namespace,
                            flow_id=flow_id,
                            execution_id=execution_id,
                            task_id=task_id,
                            min_level=self.level,
                            size=MAX_PAGE_SIZE,
                            sort_desc=False,
                            after=after,
                        )
                    )
                    for entry in page.results:
                        row = entry.to_dict()
                        row.pop("schemaVersion", None)
                        _rows.write_row(out, row)
                        size += 1
                    if page.next is None:
                        break
                    after = page.next
        return {"uri": wctx.put_path("fetch.ion", target), "size": size}


class PurgeLogs(RunnableTask):
    """Deletes the logs of a namespace (and below), of a flow, of an execution or of every
    flow, written between ``startDate`` and ``endDate``, at ``logLevels`` (any by default);
    outputs ``count``."""

    TYPE: ClassVar[str] = "lanner.core.log.PurgeLogs"
    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    execution_id: str | None = Field(default=None, alias="executionId")  # Kestra 0.21+
    log_levels: list[str] | None = Field(default=None, alias="logLevels")
    start_date: str | None = Field(default=None, alias="startDate")
    end_date: str = Field(alias="endDate")

    @field_validator("log_levels")
    @classmethod
    def _levels(cls, values: list[str] | None) -> list[str] | None:
        return [normalize_level(v) for v in values] if values is not None else None

    def run(self, ctx: RunContext) -> dict[str, Any]:
        wctx = worker_context(ctx)
        purge = LogPurge(
            tenant_id=wctx.tenant_id,
            namespace=str(ctx.render(self.namespace)) if self.namespace else None,
            flow_id=str(ctx.render(self.flow_id)) if self.flow_id else None,
            execution_id=str(ctx.render(self.execution_id)) if self.execution_id else None,
            levels=self.log_levels or (),
            start_date=_date(ctx, self.start_date, "startDate"),
            end_date=_date(ctx, self.end_date, "endDate"),
        )
        return {"count": wctx.repositories().logs.delete(purge)}


class PurgeExecutions(RunnableTask):
    """Deletes the executions of a namespace (and below), of a flow, or of every flow, started
    between ``startDate`` and ``endDate``, in ``states`` (any by default), with their logs,
    metrics and internal-storage files (each can be kept: ``purgeExecution``, ``purgeLog``,
    ``purgeMetric``, ``purgeStorage``). Outputs ``executionsCount``, ``logsCount``,
    ``metricsCount``, ``storagesCount``."""

    TYPE: ClassVar[str] = "lanner.core.execution.PurgeExecutions"
    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    start_date: str | None = Field(default=None, alias="startDate")
    end_date: str = Field(alias="endDate")
    states: list[str] | None = None
    purge_execution: bool = Field(default=True, alias="purgeExecution")
    purge_log: bool = Field(default=True, alias="purgeLog")
    purge_metric: bool = Field(default=True, alias="purgeMetric")
    purge_storage: bool = Field(default=True, alias="purgeStorage")
    # executions read per page (Kestra 0.21+: its bulk delete size)
    batch_size: DynamicPositive = Field(default=100, alias="batchSize")

    @field_validator("states")
    @classmethod
    def _states_valid(cls, values: list[str] | None) -> list[str] | None:
        return _check_states(values)

    def run(self, ctx: RunContext) -> dict[str, Any]:
        wctx = worker_context(ctx)
        repositories = wctx.repositories()
        query = ExecutionQuery(
            tenant_id=wctx.tenant_id,
            namespace=str(ctx.render(self.namespace)) if self.namespace else None,
            flow_id=str(ctx.render(self.flow_id)) if self.flow_id else None,
            states=_states(self.states),
            start_date=_date(ctx, self.start_date, "startDate"),
            end_date=_date(ctx, self.end_date, "endDate"),
            size=min(int(resolve(self.batch_size, ctx.render_typed)), MAX_PAGE_SIZE),
            sort_desc=False,
        )
        counts = {"executionsCount": 0, "logsCount": 0, "metricsCount": 0, "storagesCount": 0}
        after: str | None = None
        while True:
            # the next page starts after the last one's cursor: deleting what it held is safe
            page = repositories.executions.search(replace(query, after=after))
            for execution in page.results:
                tenant = execution.tenant_id or wctx.tenant_id
                if self.purge_log:
                    counts["logsCount"] += repositories.logs.delete(
                        LogPurge(tenant_id=tenant, execution_id=execution.id)
                    )
                if self.purge_metric:
                    counts["metricsCount"] += repositories.metrics.delete(tenant, execution.id)
                if self.purge_storage:
                    counts["storagesCount"] += wctx.delete_execution_files(
                        execution.namespace, execution.flow_id, execution.id
                    )
                if self.purge_execution:
                    repositories.executions.delete(tenant, execution.id)
                    counts["executionsCount"] += 1
            if page.next is None:
                break
            after = page.next
        return counts


PLUGINS: list[type] = [Count, Fetch, PurgeLogs, PurgeExecutions]
