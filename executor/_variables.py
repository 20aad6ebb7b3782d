"""The variables a template sees, built the way Kestra's ``RunVariables`` builds them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from common.flow import flowable_utils as fu
from common.models.execution import Execution, TaskRun
from common.models.flow import Flow
from common.models.state import State
from common.plugins.base import Task


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in other.items():
        if key in into and isinstance(into[key], dict) and isinstance(value, Mapping):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
    return into


def outputs_map(execution: Execution) -> dict[str, Any]:
    """``outputs.<taskId>``, nested by iteration values for tasks inside ForEach."""
    by_id = {tr.id: tr for tr in execution.task_run_list}
    result: dict[str, Any] = {}
    for tr in execution.task_run_list:
        if tr.outputs is None:
            continue
        values: list[str] = []
        current = tr
        while current.parent_task_run_id and current.parent_task_run_id in by_id:
            current = by_id[current.parent_task_run_id]
            if current.value is not None:
                values.append(current.value)
        values.reverse()
        if not values:
            entry: Any = tr.outputs if tr.value is None else {tr.value: tr.outputs}
        else:
            entry = {}
            cursor = entry
            for v in values:
                cursor[v] = {}
                cursor = cursor[v]
            if tr.value is not None:
                cursor[tr.value] = tr.outputs
            else:
                cursor.update(tr.outputs)
        _merge(result, {tr.task_id: entry})
    return result


def nest_dotted(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"nested.more.int": 1}`` → ``{"nested": {"more": {"int": 1}}}`` (and the flat key kept)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        out[key] = value
        if "." in key:
            parts = key.split(".")
            cursor = out
            for part in parts[:-1]:
                nxt = cursor.get(part)
                if not isinstance(nxt, dict):
                    nxt = {}
                    cursor[part] = nxt
                cursor = nxt
            cursor[parts[-1]] = value
    return out


def labels_map(execution: Execution) -> dict[str, Any]:
    return nest_dotted({label.key: label.value for label in execution.labels})


class VariableBuilder:
    """Builds the render variables of an execution; execution-wide parts are computed once."""

    def __init__(
        self,
        flow: Flow,
        execution: Execution,
        globals_: Mapping[str, Any],
        envs: Mapping[str, Any],
        input_defaults: Mapping[str, Any],
    ) -> None:
        self.flow = flow
        self.execution = execution
        self.globals = globals_
        self.envs = envs
        self.input_defaults = input_defaults
        self._base: dict[str, Any] | None = None

    def invalidate(self) -> None:
        self._base = None

    def base(self) -> dict[str, Any]:
        if self._base is None:
            ex = self.execution
            variables: dict[str, Any] = {
                "flow": {
                    "id": self.flow.id,
                    "namespace": self.flow.namespace,
                    "revision": ex.flow_revision,
                    "tenantId": ex.tenant_id,
                },
                "execution": {
                    "id": ex.id,
                    "startDate": iso(ex.state.start_date),
                    "originalId": ex.original_id or ex.id,
                    "state": ex.state.current.value,
                },
                "labels": labels_map(ex),
                "vars": self.flow.variables,
                "outputs": outputs_map(ex),
                "globals": dict(self.globals),
                "envs": dict(self.envs),
                "tasks": {tr.task_id: {"state": tr.state.current.value} for tr in ex.task_run_list},
            }
            if ex.inputs or self.input_defaults:
                merged = {**self.input_defaults, **(ex.inputs or {})}
                variables["inputs"] = nest_dotted(merged)
            if ex.trigger is not None:
                variables["trigger"] = ex.trigger.variables
            self._base = variables
        return self._base

    def for_task_run(self, task: Task | None, task_run: TaskRun | None) -> dict[str, Any]:
        variables = dict(self.base())
        if task is not None:
            variables["task"] = {"id": task.id, "type": task.type}
        if task_run is not None:
            variables["taskrun"] = {
                "id": task_run.id,
                "startDate": iso(task_run.state.start_date),
                "parentId": task_run.parent_task_run_id,
                "value": task_run.value,
                "attemptsCount": max(len(task_run.attempts) - 1, 0),
                "iteration": task_run.iteration,
            }
            ancestors = fu.parents(self.execution, task_run)
            parents: list[dict[str, Any]] = []
            for parent in reversed(ancestors):
                entry: dict[str, Any] = {}
                if parent.value is not None:
                    entry["taskrun"] = {"value": parent.value}
                if parent.outputs is not None:
                    entry["outputs"] = parent.outputs
                if entry:
                    parents.append(entry)
            if parents:
                variables["parents"] = parents
                variables["parent"] = parents[0]
        return variables

    def error_logs(self) -> list[dict[str, Any]]:
        """What ``errorLogs()`` returns: the error of each failed task run of the execution."""
        out = []
        for tr in self.execution.task_run_list:
            if tr.error and tr.state.current in (State.FAILED, State.KILLED, State.WARNING):
                out.append(
                    {
                        "taskId": tr.task_id,
                        "taskRunId": tr.id,
                        "executionId": self.execution.id,
                        "level": "ERROR",
                        "message": tr.error,
                        "timestamp": iso(tr.state.end_date),
                    }
                )
        return out
