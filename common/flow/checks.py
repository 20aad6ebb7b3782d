"""Checks on a parsed flow that pydantic cannot express: template syntax, trigger sanity."""

from __future__ import annotations

from typing import Any

from common.errors import Problem, TemplateError
from common.models.flow import Flow


def _templates(value: Any, path: str):
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _templates(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _templates(v, f"{path}[{i}]")


def check_flow(flow: Flow, data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    try:
        from common.templating import check_syntax
    except ImportError:  # templating not available: syntax is checked at render time
        return problems
    for key in ("tasks", "errors", "finally", "afterExecution", "outputs", "triggers"):
        for path, template in _templates(data.get(key), key):
            try:
                check_syntax(template)
            except TemplateError as exc:
                problems.append(Problem(path, f"invalid template: {exc}"))
    return problems
