"""Conversion of rendered values to text, as Kestra's ``JsonWriter`` does.

Maps and lists become compact Jackson-style JSON, booleans ``true``/``false``, ``null`` the empty
string, floats Java's ``Double.toString`` form and dates ISO-8601 with millisecond precision.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Set
from decimal import Decimal
from typing import Any

from jinja2 import Undefined

from common.errors import TemplateError

from ._limits import MAX_JSON

_UTC = dt.UTC


def java_double(value: float) -> str:
    """Format a float like Java's ``Double.toString`` (``3.0``, ``1.0E10``, ``1.5E-5``)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(value)
        if "e" not in text:
            return text if "." in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text_digits = "".join(str(d) for d in digits).rstrip("0") or "0"
    sci_exponent = len(digits) + exponent - 1
    mantissa = text_digits[0] + "." + (text_digits[1:] or "0")
    return ("-" if sign else "") + mantissa + "E" + str(sci_exponent)


def format_datetime(value: dt.datetime) -> str:
    """ISO-8601 with milliseconds: ``2024-01-01T10:00:00.123Z`` (offset when not UTC)."""
    base = value.strftime("%Y-%m-%dT%H:%M:%S") + f".{value.microsecond // 1000:03d}"
    offset = value.utcoffset()
    if offset is None:
        return base
    if offset == dt.timedelta(0):
        return base + "Z"
    return base + format_offset(offset)


def format_offset(offset: dt.timedelta) -> str:
    total = int(offset.total_seconds())
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}"
    return text + (f":{seconds:02d}" if seconds else "")


def format_duration(value: dt.timedelta) -> str:
    """Java ``Duration.toString``: ``PT1H30M``, ``PT0.5S``, ``PT0S``."""
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "PT0S"
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    text = "PT"
    if hours:
        text += f"{sign}{hours}H"
    if minutes:
        text += f"{sign}{minutes}M"
    if seconds or micros:
        fraction = f".{micros:06d}".rstrip("0") if micros else ""
        text += f"{sign}{seconds}{fraction}S"
    return text


def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        return to_string(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Set | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot convert a value of type {type(value).__name__} to JSON")


def _weight(value: Any, limit: int, memo: dict[int, int]) -> int:
    """About how many characters ``value``'s JSON has, counting each shared list or map once
    per reference but walking it once: ``[a, a, a]`` built by a template weighs 3 x ``a``."""
    if isinstance(value, str):
        return len(value) + 2
    if not isinstance(value, Mapping | list | tuple):
        return 8
    key = id(value)
    known = memo.get(key)
    if known is not None:
        if known < 0:
            raise TemplateError("cannot convert a self-referencing value to JSON")
        return known
    memo[key] = -1
    total = 2
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
    for item in items:
        if isinstance(value, Mapping):
            total += _weight(item[0], limit, memo) + _weight(item[1], limit, memo) + 2
        else:
            total += _weight(item, limit, memo) + 1
        if total > limit:
            raise TemplateError(f"value too large to convert to JSON (limit {limit} characters)")
    memo[key] = total
    return total


def to_json(value: Any) -> str:
    """Compact JSON as Jackson writes it (``{"a":1}``), non-ASCII kept; at most
    ``MAX_OUTPUT`` characters (a template can build a structure whose JSON would not fit in
    memory)."""
    if isinstance(value, Mapping | list | tuple):
        _weight(value, MAX_JSON, {})
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def to_string(value: Any) -> str:
    """The text Kestra prints for ``value`` in ``{{ }}`` and in ``~`` concatenation."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return java_double(value)
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping | list | tuple | Set):
        return to_json(value)
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return format_duration(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if callable(value):
        raise TemplateError("a function cannot be printed: call it, as in now()")
    return str(value)
