"""Outputs that travel in queue messages: JSON-safe, and large values moved to storage.

When the JSON of an attempt's outputs is over ``max_bytes``, the largest top-level values are
written to internal storage one by one (``<task run dir>/outputs/<key>.json``, or ``.txt`` with
the raw text for a string value, so ``{{ read(outputs.t.key) }}`` gives the string back) and
each is replaced by its ``lanner://`` URI string, until the outputs fit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any


def json_safe(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Round-trip through JSON: dates and other objects become their text."""
    result = json.loads(json.dumps(dict(outputs), default=str))
    assert isinstance(result, dict)
    return result


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def offload(
    outputs: dict[str, Any],
    max_bytes: int,
    put: Callable[[str, bytes], str],
) -> tuple[dict[str, Any], list[str]]:
    """Outputs that fit in ``max_bytes`` and the keys moved to storage."""
    if _size(outputs) <= max_bytes:
        return outputs, []
    result = dict(outputs)
    moved: list[str] = []
    for key in sorted(result, key=lambda k: _size(result[k]), reverse=True):
        value = result[key]
        if isinstance(value, str) and value.startswith(("lanner://", "kestra://")):
            continue
        if isinstance(value, str):
            data, name = value.encode(), f"{key}.txt"
        else:
            data, name = json.dumps(value).encode(), f"{key}.json"
        result[key] = put(f"outputs/{name}", data)
        moved.append(key)
        if _size(result) <= max_bytes:
            break
    return result, moved
