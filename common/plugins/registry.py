"""The plugin registry: task, trigger and condition classes by type name.

Plugins come from the entry-point group ``lanner.plugins``; each entry point names a list of
plugin classes. Type names are canonical (``lanner.core.log.Log``); Kestra's names resolve
through one alias table so Kestra flows run unchanged.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import Annotated, Any

from pydantic import PlainValidator, SerializeAsAny
from pydantic_core import PydanticCustomError

from .base import Condition, FlowModel, Task, Trigger

_PREFIX_ALIASES = {
    "io.kestra.plugin.core.": "lanner.core.",
    "io.kestra.plugin.scripts.": "lanner.scripts.",
}

# Kestra's legacy names (before the 0.17 rename) that do not follow the prefix rule. Each
# names a registered plugin (tests/webserver/test_plugin_types.py keeps the table honest).
_LEGACY = {
    "io.kestra.core.tasks.flows.Sequential": "lanner.core.flow.Sequential",
    "io.kestra.core.tasks.flows.Parallel": "lanner.core.flow.Parallel",
    "io.kestra.core.tasks.flows.Switch": "lanner.core.flow.Switch",
    "io.kestra.core.tasks.flows.If": "lanner.core.flow.If",
    "io.kestra.core.tasks.flows.ForEach": "lanner.core.flow.ForEach",
    "io.kestra.core.tasks.flows.EachSequential": "lanner.core.flow.EachSequential",
    "io.kestra.core.tasks.flows.EachParallel": "lanner.core.flow.EachParallel",
    "io.kestra.core.tasks.flows.Dag": "lanner.core.flow.Dag",
    "io.kestra.core.tasks.flows.AllowFailure": "lanner.core.flow.AllowFailure",
    "io.kestra.core.tasks.flows.Subflow": "lanner.core.flow.Subflow",
    "io.kestra.core.tasks.flows.Flow": "lanner.core.flow.Subflow",
    "io.kestra.core.tasks.flows.ForEachItem": "lanner.core.flow.ForEachItem",
    "io.kestra.core.tasks.flows.Pause": "lanner.core.flow.Pause",
    "io.kestra.core.tasks.flows.WaitFor": "lanner.core.flow.WaitFor",
    "io.kestra.core.tasks.flows.WorkingDirectory": "lanner.core.flow.WorkingDirectory",
    "io.kestra.core.tasks.flows.Worker": "lanner.core.flow.WorkingDirectory",
    "io.kestra.core.tasks.debugs.Return": "lanner.core.debug.Return",
    "io.kestra.core.tasks.debugs.Echo": "lanner.core.debug.Echo",
    "io.kestra.core.tasks.log.Log": "lanner.core.log.Log",
    "io.kestra.core.tasks.executions.Fail": "lanner.core.execution.Fail",
    "io.kestra.core.tasks.executions.Labels": "lanner.core.execution.Labels",
    "io.kestra.core.tasks.outputs.OutputValues": "lanner.core.output.OutputValues",
    "io.kestra.core.tasks.flows.Sleep": "lanner.core.flow.Sleep",
    "io.kestra.plugin.fs.http.Request": "lanner.core.http.Request",
    "io.kestra.core.tasks.scripts.Bash": "lanner.scripts.shell.Commands",
    "io.kestra.core.tasks.storages.Delete": "lanner.core.storage.Delete",
    "io.kestra.core.tasks.storages.Size": "lanner.core.storage.Size",
    "io.kestra.core.tasks.storages.Concat": "lanner.core.storage.Concat",
    "io.kestra.core.tasks.storages.Split": "lanner.core.storage.Split",
    "io.kestra.core.tasks.storages.Reverse": "lanner.core.storage.Reverse",
    "io.kestra.core.tasks.storages.DeduplicateItems": "lanner.core.storage.DeduplicateItems",
    "io.kestra.core.tasks.storages.FilterItems": "lanner.core.storage.FilterItems",
    "io.kestra.core.tasks.executions.Counts": "lanner.core.execution.Count",
    "io.kestra.plugin.core.execution.Counts": "lanner.core.execution.Count",  # Kestra's docs
    "io.kestra.core.tasks.log.Fetch": "lanner.core.log.Fetch",
    "io.kestra.core.tasks.trigger.Toggle": "lanner.core.trigger.Toggle",
    "io.kestra.core.tasks.storages.Purge": "lanner.core.execution.PurgeExecutions",
    "io.kestra.plugin.core.storage.Purge": "lanner.core.execution.PurgeExecutions",
    "io.kestra.core.models.triggers.types.Schedule": "lanner.core.trigger.Schedule",
    "io.kestra.core.models.triggers.types.Flow": "lanner.core.trigger.Flow",
    "io.kestra.core.models.triggers.types.Webhook": "lanner.core.trigger.Webhook",
    "io.kestra.core.models.conditions.types.ExecutionStatusCondition": (
        "lanner.core.condition.ExecutionStatus"
    ),
    "io.kestra.core.models.conditions.types.ExecutionFlowCondition": (
        "lanner.core.condition.ExecutionFlow"
    ),
    "io.kestra.core.models.conditions.types.ExecutionNamespaceCondition": (
        "lanner.core.condition.ExecutionNamespace"
    ),
    "io.kestra.core.models.conditions.types.MultipleCondition": (
        "lanner.core.condition.MultipleCondition"
    ),
    "io.kestra.core.models.conditions.types.VariableCondition": "lanner.core.condition.Expression",
    # the names Kestra's plugin pages use in their examples (`ExpressionCondition`...)
    **{
        f"io.kestra.plugin.core.condition.{name}Condition": f"lanner.core.condition.{name}"
        for name in (
            "ExecutionStatus",
            "ExecutionFlow",
            "ExecutionNamespace",
            "ExecutionLabels",
            "Expression",
            "Not",
            "Or",
            "DayWeek",
            "Weekend",
        )
    },
}


def canonical_type(name: str) -> str:
    if name in _LEGACY:
        return _LEGACY[name]
    for prefix, replacement in _PREFIX_ALIASES.items():
        if name.startswith(prefix):
            return replacement + name[len(prefix) :]
    return name


class Registry:
    def __init__(self, classes: list[type[FlowModel]]) -> None:
        self.by_type: dict[str, type[FlowModel]] = {}
        for cls in classes:
            type_name = getattr(cls, "TYPE", "")
            if not type_name:
                raise TypeError(f"plugin {cls.__qualname__} has no TYPE")
            self.by_type[type_name] = cls

    def get(self, type_name: str) -> type[FlowModel] | None:
        return self.by_type.get(canonical_type(type_name))

    def types(self) -> list[str]:
        return sorted(self.by_type)


@lru_cache(maxsize=1)
def registry() -> Registry:
    classes: list[type[FlowModel]] = []
    for ep in entry_points(group="lanner.plugins"):
        loaded = ep.load()
        classes.extend(loaded if isinstance(loaded, list | tuple) else [loaded])
    return Registry(classes)


def _validator(base: type[FlowModel], kind: str) -> Any:
    def validate(value: Any) -> Any:
        if isinstance(value, base):
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError("plugin_type", f"a {kind} must be a map with a 'type'")
        type_name = value.get("type")
        if not isinstance(type_name, str) or not type_name:
            raise PydanticCustomError("plugin_type", f"a {kind} needs a 'type'")
        cls = registry().get(type_name)
        if cls is None or not issubclass(cls, base):
            raise PydanticCustomError(
                "plugin_type",
                "unknown {kind} type '{type_name}'",
                {"kind": kind, "type_name": type_name},
            )
        return cls.model_validate(value)

    return validate


AnyTask = Annotated[SerializeAsAny[Task], PlainValidator(_validator(Task, "task"))]
AnyTrigger = Annotated[SerializeAsAny[Trigger], PlainValidator(_validator(Trigger, "trigger"))]
AnyCondition = Annotated[
    SerializeAsAny[Condition], PlainValidator(_validator(Condition, "condition"))
]
