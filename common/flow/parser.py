"""Flow YAML to a validated ``Flow``, with errors that name the path and the line.

Every problem is reported at once, as ``tasks[2].message (line 14): missing required property``,
so a user fixes a flow in one round trip.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import ValidationError

from common.errors import FlowValidationError, Problem
from common.models.flow import Flow
from common.plugins.registry import canonical_type

MAX_SOURCE_BYTES = 2 * 1024 * 1024

_MESSAGES = {
    "missing": "missing required property",
    "extra_forbidden": "unknown property",
}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader keeping YAML 1.2-ish scalars: dates and times stay strings (as in Kestra).
    On libyaml when PyYAML has it: the pure-Python parser took 2 ms per flow, which a scheduler
    loading 100,000 flows pays at every start."""


# Kestra reads `2023-01-01` and `10:00` as strings; PyYAML would turn them into date objects.
_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _lines(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            out[child] = key.start_mark.line + 1
            _lines(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            _lines(value, f"{path}[{index}]", out)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # pydantic's internal validator names
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_for(path: str, lines: dict[str, int]) -> int | None:
    probe = path
    while probe:
        if probe in lines:
            return lines[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return lines.get("")


def parse_flow(source: str, *, check_templates: bool = False) -> Flow:
    """Parse and validate a flow's YAML source; raise ``FlowValidationError`` on any problem.

    Template syntax is checked with ``check_templates``: where a user hands us a flow (the API's
    create/update/validate, ``lanner flow validate``, ``--flows-dir``), so a typo in a template
    is a 422 naming its path and line. Loading a flow that is already stored skips it: a stored
    flow must always load, even if a later templating version became stricter.
    """
    if len(source.encode()) > MAX_SOURCE_BYTES:
        raise FlowValidationError([Problem("", f"flow source over {MAX_SOURCE_BYTES} bytes")])
    loader = _Loader(source)
    try:
        # parsed once: the node gives the lines, the same node the data
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise FlowValidationError(
            [Problem("", f"invalid YAML: {reason}", line=line, column=column)]
        ) from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        _lines(node, "", lines)
    return parse_flow_dict(data, lines, check_templates=check_templates)


def parse_flow_dict(
    data: Any, lines: dict[str, int] | None = None, *, check_templates: bool = False
) -> Flow:
    lines = lines or {}
    if not isinstance(data, dict):
        raise FlowValidationError(
            [Problem("", "a flow must be a YAML map with id, namespace, tasks")]
        )
    data = _apply_plugin_defaults(data)
    try:
        flow = Flow.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            path = _path(tuple(err["loc"]))
            message = _MESSAGES.get(err["type"], err["msg"])
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            problems.append(Problem(path, message, line=_line_for(path, lines)))
        raise FlowValidationError(problems) from None
    if not check_templates:
        return flow
    from common.flow.checks import check_flow

    problems = check_flow(flow, data)
    if problems:
        for i, p in enumerate(problems):
            if p.line is None:
                problems[i] = Problem(p.path, p.message, line=_line_for(p.path, lines))
        raise FlowValidationError(problems)
    return flow


def _apply_plugin_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Merge flow-level ``pluginDefaults`` into the tasks they name (forced ones win)."""
    defaults = data.get("pluginDefaults") or data.get("taskDefaults")
    if not isinstance(defaults, list) or not defaults:
        return data
    data = copy.deepcopy(data)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for d in defaults:
        if isinstance(d, dict) and isinstance(d.get("type"), str):
            by_type.setdefault(canonical_type(d["type"]), []).append(d)

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            type_name = value.get("type")
            if isinstance(type_name, str) and "id" in value:
                for d in by_type.get(canonical_type(type_name), []):
                    for k, v in (d.get("values") or {}).items():
                        if d.get("forced") or k not in value:
                            value[k] = copy.deepcopy(v)
            for v in value.values():
                visit(v)
        elif isinstance(value, list):
            for v in value:
                visit(v)

    for key in ("tasks", "errors", "finally", "afterExecution"):
        visit(data.get(key))
    return data
