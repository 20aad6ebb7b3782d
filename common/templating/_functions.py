"""Template functions (``now()``, ``range()``, ``render()``...) and the private helpers the
translated expressions call (``_cat``, ``_bool``, ``_iter``...).

Helpers enforce the resource limits: ``range()`` length, string/list repetition size, a per-render
iteration budget and the size of concatenated strings.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import os
import random
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
from jinja2 import Undefined, pass_context
from jinja2.runtime import Context

from common.errors import TemplateError

from . import _dates, _limits
from ._filters import defined, f_from_json
from ._limits import MAX_ITEMS, MAX_OUTPUT, TimedList
from ._output import to_string

MAX_RANGE = 100_000
MAX_RENDER_DEPTH = 50

# the worker's randomInt(); the executor's core passes a seeded one (``RenderContext``)
_UNSEEDED = random.Random()


def reset_budget() -> None:
    _limits.start()


_spend = _limits.spend


# -- helpers called by translated expressions ------------------------------------------------
def h_bool(value: Any) -> bool:
    """Pebble/Kestra truthiness of a condition operand."""
    if value is True or value is False:
        return value
    value = defined(value)
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "-0")
    if isinstance(value, int | float):
        return value != 0
    return bool(value)


def h_cat(left: Any, right: Any) -> str:
    text = to_string(left) + to_string(right)
    if len(text) > MAX_OUTPUT:
        raise TemplateError(f"string too long (limit {MAX_OUTPUT} characters)")
    return text


def _number(value: Any, operator: str) -> Any:
    value = defined(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str | list) and operator == "*":
            return value
        raise TemplateError(f"operator '{operator}' needs numbers, got {to_string(value)!r}")
    return value


def h_add(left: Any, right: Any) -> Any:
    """Pebble's ``+``: string concatenation when either side is a string, list append."""
    left, right = defined(left), defined(right)
    if isinstance(left, str) or isinstance(right, str):
        return h_cat(left, right)
    if isinstance(left, list):
        right = right if isinstance(right, list) else [right]
        _limits.check_items(len(left) + len(right))
        return left + right
    return _number(left, "+") + _number(right, "+")


def h_mul(left: Any, right: Any) -> Any:
    left, right = _number(left, "*"), _number(right, "*")
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, str | list):
            limit = MAX_OUTPUT if isinstance(seq, str) else MAX_ITEMS
            if not isinstance(count, int) or len(seq) * count > limit:
                raise TemplateError("result of '*' is too large")
    return left * right


def h_div(left: Any, right: Any) -> Any:
    left, right = _number(left, "/"), _number(right, "/")
    if right == 0:
        raise TemplateError("division by zero")
    if isinstance(left, int) and isinstance(right, int):
        quotient = abs(left) // abs(right)
        return quotient if (left >= 0) == (right >= 0) else -quotient
    return left / right


def h_mod(left: Any, right: Any) -> Any:
    left, right = _number(left, "%"), _number(right, "%")
    if right == 0:
        raise TemplateError("division by zero")
    if isinstance(left, int) and isinstance(right, int):
        remainder = abs(left) % abs(right)
        return remainder if left >= 0 else -remainder
    return math.fmod(left, right)


def h_contains(container: Any, item: Any) -> bool:
    container, item = defined(container), defined(item)
    if container is None:
        return False
    if isinstance(container, str):
        return to_string(item) in container
    if isinstance(container, Mapping):
        return item in container
    if isinstance(item, list) and isinstance(container, list | tuple):
        return all(element in container for element in item)
    return item in container


def h_iter(value: Any) -> Iterable[Any]:
    """Iterable of a ``{% for %}``: maps give ``{key, value}`` entries, null gives nothing."""
    value = defined(value)
    if value is None:
        return ()
    if isinstance(value, Mapping):
        items: list[Any] = TimedList({"key": k, "value": v} for k, v in value.items())
    elif isinstance(value, str):
        raise TemplateError("cannot iterate over a string")
    elif isinstance(value, Iterable):
        items = TimedList(value)
    else:
        raise TemplateError(f"cannot iterate over a value of type {type(value).__name__}")
    _spend(len(items))
    return items


def h_items(value: Any) -> Iterable[Any]:
    """Iterable of ``{% for k, v in map %}``."""
    value = defined(value)
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise TemplateError("'for key, value in ...' needs a map")
    _spend(len(value))
    return TimedList(value.items())


@pass_context
def h_var(context: Context, name: str) -> Any:
    """A variable the translation cannot name directly: a Jinja keyword, ``self``, or a
    helper's name (``_cat``), which a template cannot reach: undefined unless a variable."""
    if name in GLOBALS and name[:1] == "_" or name == "self":
        return context.environment.undefined(name=name)
    return context.resolve_or_missing(name) if name in context else context.resolve(name)


# -- functions -------------------------------------------------------------------------------
def at_zone(moment: dt.datetime, time_zone: str | None) -> dt.datetime:
    """``now()``'s result: ``moment`` in ``time_zone`` (UTC when None)."""
    if time_zone:
        try:
            return moment.astimezone(_dates.zone(time_zone))
        except ValueError as exc:
            raise TemplateError(f"function 'now': {exc}") from exc
    return moment


def fn_now(timeZone: str | None = None) -> dt.datetime:  # noqa: N803 - Kestra's name
    return at_zone(dt.datetime.now(dt.UTC), timeZone)


def fn_range(start: Any, end: Any, step: Any = 1) -> list[Any]:
    """Pebble's ``range``: the end is INCLUSIVE."""
    start, end, step = defined(start), defined(end), defined(step)
    if isinstance(start, str) and isinstance(end, str) and len(start) == len(end) == 1:
        return [chr(c) for c in fn_range(ord(start), ord(end), step)]
    try:
        start, end, step = int(start), int(end), int(step)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"function 'range' needs integers ({exc})") from exc
    if step == 0:
        raise TemplateError("function 'range': step must not be 0")
    length = max(0, (end - start) // step + 1)
    if length > MAX_RANGE:
        raise TemplateError(f"function 'range': {length} items exceed the limit of {MAX_RANGE}")
    return list(range(start, end + (1 if step > 0 else -1), step))


def fn_from_yaml(value: Any) -> Any:
    value = defined(value)
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise TemplateError(f"invalid YAML: {exc}") from exc


def fn_secret(name: Any) -> str:
    key = "SECRET_" + to_string(defined(name)).upper()
    encoded = os.environ.get(key)
    if encoded is None:
        raise TemplateError(f"secret '{to_string(name)}' not found")
    try:
        return base64.b64decode(encoded, validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TemplateError(f"secret '{to_string(name)}' is not valid base64") from exc


def fn_is_null(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def fn_max(*values: Any) -> Any:
    items = list(values[0]) if len(values) == 1 and isinstance(values[0], list) else values
    return max(defined(v) for v in items)


def fn_min(*values: Any) -> Any:
    items = list(values[0]) if len(values) == 1 and isinstance(values[0], list) else values
    return min(defined(v) for v in items)


def fn_uuid() -> str:
    return str(uuid.uuid4())


def random_int(generator: random.Random, lower: Any, upper: Any) -> int:
    """``randomInt(lower, upper)``: ``upper`` excluded."""
    return generator.randrange(int(defined(lower)), int(defined(upper)))


def fn_random_int(lower: int, upper: int) -> int:
    return random_int(_UNSEEDED, lower, upper)


def _get(value: Any, key: Any) -> Any:
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        alternative = str(key) if not isinstance(key, str) else None
        if alternative is not None and alternative in value:
            return value[alternative]
        raise TemplateError(f"currentEachOutput: no output for value '{to_string(key)}'")
    raise TemplateError("currentEachOutput expects the map of an iterated task's outputs")


@pass_context
def fn_current_each_output(context: Context, outputs: Any) -> Any:
    """Walk ``outputs`` by the values of ``parents`` (outermost first), then ``taskrun.value``."""
    value = defined(outputs)
    parents = context.resolve_or_missing("parents")
    if isinstance(parents, list):
        for parent in reversed(parents):
            taskrun = parent.get("taskrun") if isinstance(parent, Mapping) else None
            if isinstance(taskrun, Mapping) and taskrun.get("value") is not None:
                value = _get(value, taskrun["value"])
    taskrun = context.resolve_or_missing("taskrun")
    if isinstance(taskrun, Mapping) and taskrun.get("value") is not None:
        value = _get(value, taskrun["value"])
    return value


@pass_context
def fn_file_uri(context: Context, path: Any) -> str:
    """Kestra's ``fileURI(path)``: the URI of a namespace file of the flow's namespace
    (``lanner:///<tenant>/<namespace as folders>/_files/<path>``, where namespace files are
    stored; the worker writes its own scheme)."""
    from common.errors import LannerError
    from common.storage.namespace_files import file_uri

    flow = context.resolve_or_missing("flow")
    namespace = flow.get("namespace") if isinstance(flow, Mapping) else None
    if not namespace:
        raise TemplateError("fileURI: no flow namespace in this context")
    tenant = flow.get("tenantId") or "main"
    try:
        return file_uri(str(tenant), str(namespace), to_string(defined(path)))
    except LannerError as exc:
        raise TemplateError(str(exc)) from exc


def kv_function(read: Callable[[str | None, str], tuple[bool, Any, str]]) -> Callable[..., Any]:
    """``kv(key, namespace?, errorOnMissing?)`` (Kestra's ``KvFunction``) on ``read(namespace,
    key) -> (found, value, namespace)``, which the worker gives (the store is in internal
    storage); the namespace defaults to the flow's. Missing (or expired) is null unless
    ``errorOnMissing``."""

    def kv(key: Any = None, namespace: Any = None, errorOnMissing: Any = False) -> Any:  # noqa: N803
        key, namespace = defined(key), defined(namespace)
        if key is None:
            raise TemplateError("The 'kv' function expects an argument 'key'.")
        try:
            found, value, where = read(None if namespace is None else str(namespace), str(key))
        except TemplateError:
            raise
        except Exception as exc:  # a bad key or namespace: the store's own message
            raise TemplateError(f"function 'kv': {exc}") from exc
        if not found and defined(errorOnMissing) is True:
            raise TemplateError(f"The key '{key}' does not exist in the namespace '{where}'.")
        return value

    return kv


def _render_fn(recursive_default: bool) -> Callable[..., Any]:
    @pass_context
    def render_function(
        context: Context, template: Any, recursive: bool = recursive_default
    ) -> Any:
        from ._engine import render_with_context

        template = defined(template)
        if not isinstance(template, str):
            return template
        result = render_with_context(template, context.get_all())
        depth = 0
        while recursive and result != template and "{" in result:
            depth += 1
            if depth > MAX_RENDER_DEPTH:
                raise TemplateError("function 'render': too many recursive renders")
            template, result = result, render_with_context(result, context.get_all())
        return result

    return render_function


GLOBALS: dict[str, Any] = {
    "now": fn_now,
    "range": fn_range,
    "fromJson": f_from_json,
    "json": f_from_json,
    "fromYaml": fn_from_yaml,
    "yaml": fn_from_yaml,
    "render": _render_fn(True),
    "renderOnce": _render_fn(False),
    "currentEachOutput": fn_current_each_output,
    "fileURI": fn_file_uri,
    "secret": fn_secret,
    "isNull": fn_is_null,
    "max": fn_max,
    "min": fn_min,
    "uuid": fn_uuid,
    "randomInt": fn_random_int,
    # private helpers of translated expressions (user names starting with "__" are rejected,
    # these start with one underscore and cannot be reached as attributes)
    "_bool": h_bool,
    "_cat": h_cat,
    "_add": h_add,
    "_mul": h_mul,
    "_div": h_div,
    "_mod": h_mod,
    "_contains": h_contains,
    "_range": fn_range,
    "_iter": h_iter,
    "_items": h_items,
    "_var": h_var,
}
