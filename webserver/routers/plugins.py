"""Kestra's plugin catalogue: ``GET /plugins`` (every registered task, trigger and condition
type, grouped as Kestra's ``Plugin``), ``GET /plugins/{cls}`` (Kestra's
``DocumentationWithSchema``: the class's docstring and its JSON schema, generated from the
plugin's pydantic model) and ``GET /plugins/schemas/{flow,task,trigger}`` (JSON Schema draft 7
of a flow, a task or a trigger, every plugin class in ``definitions`` under its Kestra name).
Types are named as Kestra names them (``io.kestra.plugin.core...``); a Lanner name or any
alias the registry resolves finds the same plugin.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic.json_schema import models_json_schema

from common.errors import NotFoundError
from common.models.flow import Flow
from common.plugins.base import Condition, FlowModel, Task, Trigger
from common.plugins.registry import Registry, registry

router = APIRouter(tags=["plugins"])

# Lanner's canonical prefixes and the names Kestra gives them (the registry's alias table,
# read the other way)
_KESTRA_NAMES = {
    "lanner.core.": "io.kestra.plugin.core.",
    "lanner.scripts.": "io.kestra.plugin.scripts.",
}


def kestra_name(type_name: str) -> str:
    for prefix, kestra in _KESTRA_NAMES.items():
        if type_name.startswith(prefix):
            return kestra + type_name[len(prefix) :]
    return type_name


def _group(type_name: str) -> str:
    name = kestra_name(type_name)
    if name.startswith("io.kestra.plugin."):
        return ".".join(name.split(".")[:4])
    return ".".join(name.split(".")[:2])


def _kind(cls: type[FlowModel]) -> str:
    if issubclass(cls, Trigger):
        return "triggers"
    if issubclass(cls, Condition):
        return "conditions"
    return "tasks"


def _first_line(cls: type[FlowModel]) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


@router.get("/plugins", summary="Every plugin group with its task, trigger and condition types")
async def list_plugins() -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for type_name, cls in sorted(registry().by_type.items()):
        group = _group(type_name)
        plugin = groups.setdefault(
            group,
            {
                "name": group.rsplit(".", 1)[-1],
                "title": group.rsplit(".", 1)[-1],
                "group": group,
                "tasks": [],
                "triggers": [],
                "conditions": [],
            },
        )
        plugin[_kind(cls)].append(
            {
                "cls": kestra_name(type_name),
                "deprecated": False,
                "title": cls.__name__,
                "description": _first_line(cls),
            }
        )
    results = list(groups.values())
    return {"results": results, "total": len(results)}


@router.get("/plugins/{cls}", summary="A plugin's documentation and JSON schema")
async def plugin_documentation(cls: str) -> dict[str, Any]:
    plugin = registry().get(cls)
    if plugin is None:
        raise NotFoundError(f"plugin '{cls}' not found")
    schema = plugin.model_json_schema(by_alias=True)
    return {
        "markdown": (plugin.__doc__ or "").strip(),
        "schema": {
            "properties": {
                "title": plugin.__name__,
                "type": "object",
                "properties": schema.get("properties", {}),
                "required": schema.get("required", []),
            },
            "outputs": {},
            "definitions": schema.get("$defs", {}),
        },
    }


@lru_cache(maxsize=4)
def _schemas(reg: Registry) -> dict[str, Any]:
    """Draft-7 schemas of a flow, a task and a trigger from the registry's classes: each class
    under its Kestra type name in ``definitions``, its ``type`` one of its names."""
    classes = [(name, cls) for name, cls in sorted(reg.by_type.items())]
    keys, generated = models_json_schema(
        [(cls, "validation") for _, cls in classes],
        ref_template="#/definitions/{model}",
        by_alias=True,
    )
    definitions: dict[str, Any] = generated.get("$defs", {})
    text = json.dumps(definitions)
    names: dict[str, str] = {}
    for name, cls in classes:
        old = keys[(cls, "validation")]["$ref"].rsplit("/", 1)[-1]
        names[old] = kestra_name(name)
        text = text.replace(f'"#/definitions/{old}"', f'"#/definitions/{kestra_name(name)}"')
    definitions = {names.get(k, k): v for k, v in json.loads(text).items()}
    for name, _ in classes:
        definitions[kestra_name(name)]["properties"]["type"] = {
            "type": "string",
            "enum": sorted({kestra_name(name), name}),
        }

    def any_of(base: type[FlowModel]) -> dict[str, Any]:
        refs = [
            {"$ref": f"#/definitions/{kestra_name(n)}"} for n, c in classes if issubclass(c, base)
        ]
        return {"anyOf": refs}

    definitions["task"] = any_of(Task)
    definitions["trigger"] = any_of(Trigger)
    flow = Flow.model_json_schema(by_alias=True, ref_template="#/definitions/{model}")
    for key, value in flow.pop("$defs", {}).items():
        definitions.setdefault(key, value)
    tasks = {"type": "array", "items": {"$ref": "#/definitions/task"}}
    flow["properties"].update(
        {
            "tasks": {**tasks, "minItems": 1},
            "errors": tasks,
            "finally": tasks,
            "afterExecution": tasks,
            "triggers": {"type": "array", "items": {"$ref": "#/definitions/trigger"}},
        }
    )
    definitions["flow"] = flow
    return definitions


@router.get("/plugins/schemas/{type}", summary="JSON Schema (draft 7) of a flow, task or trigger")
async def schema_of(
    type: Literal["flow", "task", "trigger"],
    array_of: Annotated[bool, Query(alias="arrayOf")] = False,
) -> dict[str, Any]:
    definitions = _schemas(registry())
    root: dict[str, Any] = {"$ref": f"#/definitions/{type}"}
    if array_of:
        root = {"type": "array", "items": root}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **root,
        "definitions": definitions,
    }
