"""Execution inputs checked and typed against a flow's declared ``inputs`` (Kestra's types).

Pure: no I/O. Raw values come from a form (strings), a JSON body (typed values) or a trigger.
Every problem is reported at once as ``inputs.<id>``; the caller raises nothing else. Dotted
ids (``nested.more.int``) stay flat keys here: nesting into maps happens at render time.
Defaults that contain a template (``{{ ... }}``) are kept as written, for the executor to
render; other defaults are typed like a given value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlparse

import yaml

from common import bounded
from common.errors import InputValidationError, Problem
from common.flow.durations import parse_iso_duration
from common.models.flow import Flow, Input

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class _Invalid(Exception):
    """A value that does not fit its input; the message is shown to the user."""


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return f"'{text[:100]}'"


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


# ---------------------------------------------------------------- per-type coercion


def _string(value: Any, spec: Input) -> str:
    if isinstance(value, dict | list):
        raise _Invalid(f"{_show(value)} is not a string")
    text = value if isinstance(value, str) else str(value)
    try:  # a flow stored before its validator was checked
        mismatch = spec.validator is not None and not bounded.fullmatch(spec.validator, text)
    except re.error as exc:
        raise _Invalid(f"the input's validator is not a valid regular expression ({exc})") from None
    except bounded.LimitExceeded as exc:  # a backtracking pattern: common.bounded
        raise _Invalid(f"the input's validator '{spec.validator}': {exc}") from None
    if mismatch:
        raise _Invalid(f"{_show(text)} does not match the pattern '{spec.validator}'")
    return text


def _int(value: Any, spec: Input) -> int:
    if isinstance(value, bool):
        raise _Invalid(f"{_show(value)} is not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        number = int(value)
    else:
        raise _Invalid(f"{_show(value)} is not an integer")
    _bounds(number, spec, int)
    return number


def _float(value: Any, spec: Input) -> float:
    if isinstance(value, bool):
        raise _Invalid(f"{_show(value)} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise _Invalid(f"{_show(value)} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _Invalid(f"{_show(value)} is not a finite number")
    _bounds(number, spec, float)
    return number


def _bounds(number: Any, spec: Input, kind: Callable[[Any], Any]) -> None:
    if spec.min is not None and number < kind(spec.min):
        raise _Invalid(f"{number} is lower than the minimum {spec.min}")
    if spec.max is not None and number > kind(spec.max):
        raise _Invalid(f"{number} is greater than the maximum {spec.max}")


def _boolean(value: Any, spec: Input) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Invalid(f"{_show(value)} is not a boolean (true or false)")


def _parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise _Invalid(
                f"{_show(value)} is not an ISO-8601 date-time (example: 2024-01-15T10:00:00Z)"
            ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """UTC ISO text ending in ``Z``, like Kestra's ``Instant``."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = value.replace(tzinfo=None).isoformat()
    return text + "Z"


def _datetime(value: Any, spec: Input) -> str:
    parsed = _parse_datetime(value)
    if spec.after is not None and not parsed > _parse_datetime(spec.after):
        raise _Invalid(f"{format_datetime(parsed)} is not after {spec.after}")
    if spec.before is not None and not parsed < _parse_datetime(spec.before):
        raise _Invalid(f"{format_datetime(parsed)} is not before {spec.before}")
    return format_datetime(parsed)


def _parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise _Invalid(f"{_show(value)} is not an ISO-8601 date (example: 2024-01-15)") from None


def _date(value: Any, spec: Input) -> str:
    parsed = _parse_date(value)
    if spec.after is not None and not parsed > _parse_date(spec.after):
        raise _Invalid(f"{parsed.isoformat()} is not after {spec.after}")
    if spec.before is not None and not parsed < _parse_date(spec.before):
        raise _Invalid(f"{parsed.isoformat()} is not before {spec.before}")
    return parsed.isoformat()


def _parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads 10:00 as a sexagesimal integer (600); Kestra's YAML keeps it a time
        value = f"{value // 60:02d}:{value % 60:02d}"
    try:
        return time.fromisoformat(str(value).strip())
    except ValueError:
        raise _Invalid(f"{_show(value)} is not an ISO-8601 time (example: 10:15:30)") from None


def _time(value: Any, spec: Input) -> str:
    parsed = _parse_time(value)
    if spec.after is not None and not parsed > _parse_time(spec.after):
        raise _Invalid(f"{parsed.isoformat()} is not after {spec.after}")
    if spec.before is not None and not parsed < _parse_time(spec.before):
        raise _Invalid(f"{parsed.isoformat()} is not before {spec.before}")
    return parsed.isoformat()


def _parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_iso_duration(str(value))
    except ValueError:
        raise _Invalid(f"{_show(value)} is not an ISO-8601 duration (example: PT5M)") from None


def _duration(value: Any, spec: Input) -> str:
    parsed = _parse_duration(value)
    if spec.min is not None and parsed < _parse_duration(spec.min):
        raise _Invalid(f"{value} is shorter than the minimum {spec.min}")
    if spec.max is not None and parsed > _parse_duration(spec.max):
        raise _Invalid(f"{value} is longer than the maximum {spec.max}")
    return str(value).strip()


def _choices(spec: Input) -> list[str] | None:
    values = spec.values if spec.values is not None else spec.options
    if isinstance(values, list):
        return [str(v) for v in values]
    return None  # an expression: computed at render time, not checked here


def _select(value: Any, spec: Input) -> str:
    if isinstance(value, dict | list):
        raise _Invalid(f"{_show(value)} is not one of the allowed values")
    text = str(value)
    choices = _choices(spec)
    if choices is not None and not spec.allow_custom_value and text not in choices:
        raise _Invalid(f"{_show(text)} is not one of {', '.join(choices)}")
    return text


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError:
                raise _Invalid(f"{_show(value)} is not a JSON array") from None
            if isinstance(loaded, list):
                return loaded
        raise _Invalid(f'{_show(value)} is not a list (give a JSON array like ["a", "b"])')
    raise _Invalid(f"{_show(value)} is not a list")


def _multiselect(value: Any, spec: Input) -> list[str]:
    if isinstance(value, str) and not value.strip().startswith("["):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    else:
        items = _as_list(value)
    choices = _choices(spec)
    out = []
    for item in items:
        text = str(item)
        if choices is not None and not spec.allow_custom_value and text not in choices:
            raise _Invalid(f"{_show(text)} is not one of {', '.join(choices)}")
        out.append(text)
    return out


def _json(value: Any, spec: Input) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def _yaml(value: Any, spec: Input) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc)
        raise _Invalid(f"invalid YAML: {reason}") from None


def _uri(value: Any, spec: Input) -> str:
    text = str(value).strip() if not isinstance(value, dict | list) else ""
    parsed = urlparse(text)
    if not parsed.scheme or not (parsed.netloc or parsed.path):
        raise _Invalid(f"{_show(value)} is not a URI (example: https://example.com/file.csv)")
    return text


def _email(value: Any, spec: Input) -> str:
    text = str(value).strip() if not isinstance(value, dict | list) else ""
    if not _EMAIL.fullmatch(text):
        raise _Invalid(f"{_show(value)} is not an email address")
    return text


def _file(value: Any, spec: Input) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise _Invalid(f"{_show(value)} is not a file: upload it as a multipart file")
    if spec.extension:
        extensions = [e.strip().lower() for e in spec.extension.split(",") if e.strip()]
        if extensions and not any(value.lower().endswith(e) for e in extensions):
            raise _Invalid(f"{_show(value)} does not have the extension {spec.extension}")
    return value


_COERCE: dict[str, Callable[[Any, Input], Any]] = {
    "STRING": _string,
    "SECRET": _string,
    "ENUM": _select,
    "SELECT": _select,
    "MULTISELECT": _multiselect,
    "INT": _int,
    "FLOAT": _float,
    "BOOLEAN": _boolean,
    "BOOL": _boolean,
    "DATETIME": _datetime,
    "DATE": _date,
    "TIME": _time,
    "DURATION": _duration,
    "FILE": _file,
    "JSON": _json,
    "YAML": _yaml,
    "URI": _uri,
    "EMAIL": _email,
}


def _array(value: Any, spec: Input, path: str, problems: list[Problem]) -> list[Any] | None:
    try:
        items = _as_list(value)
    except _Invalid as exc:
        problems.append(Problem(path, str(exc)))
        return None
    item_type = (spec.item_type or "STRING").upper()
    coerce = _COERCE.get(item_type)
    if coerce is None or item_type in ("FILE", "MULTISELECT"):
        problems.append(Problem(path, f"unsupported itemType '{spec.item_type}'"))
        return None
    item_spec = spec.model_copy(update={"type": item_type})
    out: list[Any] = []
    ok = True
    for index, item in enumerate(items):
        try:
            out.append(coerce(item, item_spec))
        except _Invalid as exc:
            problems.append(Problem(f"{path}[{index}]", str(exc)))
            ok = False
    return out if ok else None


def _coerce(spec: Input, value: Any, path: str, problems: list[Problem]) -> tuple[bool, Any]:
    if spec.type == "ARRAY":
        result = _array(value, spec, path, problems)
        return result is not None, result
    try:
        return True, _COERCE[spec.type](value, spec)
    except _Invalid as exc:
        problems.append(Problem(path, str(exc)))
        return False, None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "")


def validate_inputs(
    flow: Flow, raw: Mapping[str, Any], files: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Typed inputs of a new execution of ``flow``.

    Args:
        flow: the flow whose ``inputs`` declare the types.
        raw: the given values by input id (strings from a form, or typed JSON values).
        files: internal-storage URIs of uploaded files by input id (FILE inputs).

    Returns:
        Every declared input by id: typed value, typed default, or None when optional and absent.
        Undeclared values are ignored, as Kestra does.

    Raises:
        InputValidationError: with one ``Problem("inputs.<id>", reason)`` per bad input.
    """
    files = files or {}
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for spec in flow.inputs:
        path = f"inputs.{spec.id}"
        value = files.get(spec.id, raw.get(spec.id))
        if _missing(value):
            if spec.defaults is not None:
                if _is_template(spec.defaults):
                    out[spec.id] = spec.defaults
                    continue
                value = spec.defaults
            elif spec.required:
                problems.append(Problem(path, "missing required input"))
                continue
            else:
                out[spec.id] = None
                continue
        ok, typed = _coerce(spec, value, path, problems)
        if ok:
            out[spec.id] = typed
    if problems:
        raise InputValidationError(problems)
    return out


def typed_defaults(flow: Flow) -> dict[str, Any]:
    """The defaults of ``flow``'s inputs, typed (template defaults kept as written).

    Inputs without a default are left out. Raises ``InputValidationError`` for a default that
    does not fit its own input's type.
    """
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for spec in flow.inputs:
        if spec.defaults is None:
            continue
        if _is_template(spec.defaults):
            out[spec.id] = spec.defaults
            continue
        ok, typed = _coerce(spec, spec.defaults, f"inputs.{spec.id}.defaults", problems)
        if ok:
            out[spec.id] = typed
    if problems:
        raise InputValidationError(problems)
    return out


_BOUND_PARSERS: dict[str, tuple[tuple[str, str], Callable[[Any], Any]]] = {
    "INT": (("min", "max"), lambda v: _int(v, Input(id="bound", type="INT"))),
    "FLOAT": (("min", "max"), lambda v: _float(v, Input(id="bound", type="FLOAT"))),
    "DURATION": (("min", "max"), _parse_duration),
    "DATE": (("after", "before"), _parse_date),
    "DATETIME": (("after", "before"), _parse_datetime),
    "TIME": (("after", "before"), _parse_time),
}


def bound_problem(spec: Input) -> str | None:
    """Why a bound of ``spec`` (min/max, after/before) is not a value of its type, or None.

    Checked when the flow is saved: a bound that cannot be compared would otherwise fail
    every execution with a TypeError instead of naming the flow's mistake."""
    entry = _BOUND_PARSERS.get(spec.type)
    if entry is None:
        return None
    for field in entry[0]:
        bound = getattr(spec, field)
        if bound is None:
            continue
        try:
            entry[1](bound)
        except _Invalid as exc:
            return f"'{field}' of an input of type {spec.type}: {exc}"
    return None
