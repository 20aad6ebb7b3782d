"""Kestra's plugin catalogue: ``GET /plugins`` (every registered task, trigger and condition
type, grouped as Kestra's ``Plugin``) and ``GET /plugins/{cls}`` (Kestra's
``DocumentationWithSchema``: the class's docstring and its JSON schema, generated from the
plugin's pydantic model). Types are named as Kestra names them (``io.kestra.plugin.core...``);
a Lanner name or any alias the registry resolves finds the same plugin.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from common.errors import NotFoundError
from common.plugins.base import Condition, FlowModel, Trigger
from common.plugins.registry import registry

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
