"""Flow YAML to a validated ``Flow``, with errors that name the path and the line.

Every problem is reported at once, as ``tasks[2].message (line 14): missing required property``,
so a user fixes a flow in one round trip.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
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

    _resolved: dict[tuple[str, bool], str] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        # A plain scalar's tag depends on its text alone (no path resolvers are registered):
        # flows repeat the same keys and values, and the regular expressions of the implicit
        # resolvers were a sixth of the parsing time.
        if kind is not yaml.ScalarNode:
            return str(super().resolve(kind, value, implicit))
        key = (value, implicit[0])
        tag = self._resolved.get(key)
        if tag is None:
            tag = str(super().resolve(kind, value, implicit))
            if len(self._resolved) >= 50_000:
                self._resolved.clear()  # bounded: scalar texts are unbounded
            self._resolved[key] = tag
        return tag


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


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


def _construct(loader: yaml.BaseLoader, node: yaml.Node, memo: dict[int, Any]) -> Any:
    """The data of a composed node: plain strings, maps and lists built here, anything else
    (numbers, booleans, merge keys, explicit tags) by PyYAML's constructor. PyYAML's generic
    construction was half of the cost of parsing a flow, which a scheduler starting on 100,000
    flows pays for each."""
    tag = node.tag
    if tag == _STR and type(node) is yaml.ScalarNode:
        return node.value
    known = memo.get(id(node))
    if known is not None:
        return known  # an alias of an anchored node
    if (
        tag == _MAP
        and type(node) is yaml.MappingNode
        and not any(key.tag == _MERGE for key, _ in node.value)
    ):
        mapping: dict[Any, Any] = {}
        memo[id(node)] = mapping
        for key_node, value_node in node.value:
            key = _construct(loader, key_node, memo)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found unhashable key",
                    key_node.start_mark,
                ) from None
            mapping[key] = _construct(loader, value_node, memo)
        return mapping
    if tag == _SEQ and type(node) is yaml.SequenceNode:
        sequence: list[Any] = []
        memo[id(node)] = sequence
        sequence.extend(_construct(loader, child, memo) for child in node.value)
        return sequence
    value = loader.construct_object(node, deep=True)
    memo[id(node)] = value
    return value


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


def parse_flow(
    source: str, *, check_templates: bool = False, stored: Mapping[str, Any] | None = None
) -> Flow:
    """Parse and validate a flow's YAML source; raise ``FlowValidationError`` on any problem.

    Template syntax is checked with ``check_templates``: where a user hands us a flow (the API's
    create/update/validate, ``lanner flow validate``, ``--flows-dir``), so a typo in a template
    is a 422 naming its path and line. Loading a flow that is already stored skips it: a stored
    flow must always load, even if a later templating version became stricter.

    ``stored``: what the store knows better than the source (``revision``, ``tenantId``), set
    before validation rather than by a copy after it.
    """
    if len(source.encode()) > MAX_SOURCE_BYTES:
        raise FlowValidationError([Problem("", f"flow source over {MAX_SOURCE_BYTES} bytes")])
    loader = _Loader(source)
    try:
        # parsed once: the node gives the lines, the same node the data
        node = loader.get_single_node()
        data = _construct(loader, node, {}) if node is not None else None
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
    if stored and isinstance(data, dict):
        data.update(stored)
    try:
        return parse_flow_dict(data, check_templates=check_templates)
    except FlowValidationError as exc:
        # the lines are only walked for a flow that has a problem to locate
        if node is None:
            raise
        lines: dict[str, int] = {}
        _lines(node, "", lines)
        located = [
            p if p.line is not None else Problem(p.path, p.message, _line_for(p.path, lines))
            for p in exc.problems
        ]
        raise FlowValidationError(located) from None


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
