"""Kestra and Pebble filters (``x | name(args)``) and tests (``x is name``)."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import html
import json
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import jq  # type: ignore[import-not-found]
import yaml
from jinja2 import Undefined

from common import bounded
from common.errors import TemplateError

from . import _dates, _limits
from ._output import to_json, to_string


def defined(value: Any) -> Any:
    """Raise the undefined error when ``value`` is undefined, else return it."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _text(value: Any) -> str:
    return to_string(defined(value))


def _require_list(value: Any, name: str) -> list[Any]:
    value = defined(value)
    if value is None:
        return []
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, str):
        raise TemplateError(f"filter '{name}' expects a list, got a string")
    if isinstance(value, Iterable):
        return list(value)
    raise TemplateError(f"filter '{name}' expects a list, got {type(value).__name__}")


def _date_args(
    value: Any, time_zone: str | None, existing_format: str | None
) -> tuple[dt.datetime, dt.tzinfo | None]:
    moment = _dates.to_datetime(defined(value), existing_format)
    tz = _dates.zone(time_zone)
    return (moment.astimezone(tz) if tz is not None else moment), tz


# -- JSON / data -----------------------------------------------------------------------------
def f_json(value: Any) -> str:
    return to_json(defined(value))


def f_from_json(value: Any) -> Any:
    value = defined(value)
    if value is None or not isinstance(value, str | bytes):
        return value
    try:
        return json.loads(value)
    except ValueError as exc:
        raise TemplateError(f"invalid JSON: {exc}") from exc


# jq's ``env``/``$ENV`` read the process environment (the worker's ``SECRET_*`` variables) and
# ``import``/``include`` read files: a template's program runs with these shadowed or refused
_JQ_SANDBOX = "def env: {}; def input_filename: null; def get_search_list: []; {} as $ENV | "


@functools.lru_cache(maxsize=512)
def _jq_program(expression: str) -> str:
    try:
        jq.compile(expression)  # the user's own program, for error messages that point into it
    except ValueError as exc:
        raise TemplateError(f"invalid jq expression '{expression}': {exc}") from exc
    program = f"{_JQ_SANDBOX}({expression}\n)"
    try:
        jq.compile(program)
    except ValueError as exc:
        raise TemplateError(
            f"jq expression '{expression}' is not allowed: modules (import, include) and "
            "top-level definitions of env are not available"
        ) from exc
    return program


def f_jq(value: Any, expression: str) -> list[Any]:
    """Runs in a helper process killed after ``bounded.MAX_JQ_SECONDS`` (or the render's time
    left): jq runs in C and cannot be interrupted (``[range(1e9)]``, ``def f: f; f``)."""
    value = defined(value)
    program = _jq_program(str(expression))
    text = value if isinstance(value, str) else to_json(value)
    seconds = _limits.remaining(bounded.MAX_JQ_SECONDS)
    try:
        return bounded.run_jq(program, text, seconds)
    except bounded.ProgramError as exc:
        raise TemplateError(f"jq '{expression}' failed: {exc}") from exc
    except bounded.LimitExceeded as exc:
        raise TemplateError(f"filter 'jq': '{expression}': {exc}") from exc


def f_yaml(value: Any) -> str:
    plain = json.loads(to_json(defined(value)))
    text: str = yaml.safe_dump(plain, default_flow_style=False, sort_keys=False, allow_unicode=True)
    return text


def f_keys(value: Any) -> list[Any]:
    value = defined(value)
    if isinstance(value, Mapping):
        return list(value.keys())
    raise TemplateError("filter 'keys' expects a map")


def f_values(value: Any) -> list[Any]:
    value = defined(value)
    if isinstance(value, Mapping):
        return list(value.values())
    raise TemplateError("filter 'values' expects a map")


def f_number(value: Any, type: str | None = None) -> Any:  # noqa: A002 - Kestra's arg name
    value = defined(value)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        number: Any = value
    else:
        text = _text(value).strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError as exc:
                raise TemplateError(f"'{text}' is not a number") from exc
    if type is None:
        return number
    kind = str(type).upper()
    if kind in ("INT", "INTEGER", "LONG", "BIGINTEGER", "SHORT", "BYTE"):
        return int(number)
    if kind in ("FLOAT", "DOUBLE"):
        return float(number)
    if kind == "BIGDECIMAL":
        return Decimal(str(number))
    raise TemplateError(f"unknown number type '{type}'")


def f_class_name(value: Any) -> str:
    value = defined(value)
    if value is None:
        return "null"
    table: list[tuple[type, str]] = [
        (bool, "java.lang.Boolean"),
        (int, "java.lang.Integer"),
        (float, "java.lang.Double"),
        (Decimal, "java.math.BigDecimal"),
        (str, "java.lang.String"),
        (Mapping, "java.util.LinkedHashMap"),
        (list, "java.util.ArrayList"),
        (tuple, "java.util.ArrayList"),
        (dt.datetime, "java.time.ZonedDateTime"),
        (dt.date, "java.time.LocalDate"),
        (dt.time, "java.time.LocalTime"),
        (dt.timedelta, "java.time.Duration"),
    ]
    if type(value) is int and not -(2**31) <= value < 2**31:
        return "java.lang.Long"
    for kind, name in table:
        if isinstance(value, kind):
            return name
    return type(value).__name__


# -- dates -----------------------------------------------------------------------------------
def f_date(
    value: Any,
    format: str | None = None,  # noqa: A002
    timeZone: str | None = None,  # noqa: N803 - Kestra's argument names
    existingFormat: str | None = None,  # noqa: N803
    locale: str | None = None,
) -> str:
    try:
        moment, _ = _date_args(value, timeZone, existingFormat)
        return _dates.format_date(moment, format or _dates.DEFAULT_FORMAT)
    except ValueError as exc:
        raise TemplateError(f"filter 'date': {exc}") from exc


def f_date_add(
    value: Any,
    amount: int,
    unit: str,
    format: str | None = None,  # noqa: A002
    timeZone: str | None = None,  # noqa: N803
    existingFormat: str | None = None,  # noqa: N803
    locale: str | None = None,
) -> str:
    try:
        moment, _ = _date_args(value, timeZone, existingFormat)
        moved = _dates.add(moment, int(amount), str(unit))
        return _dates.format_date(moved, format or _dates.DEFAULT_FORMAT)
    except ValueError as exc:
        raise TemplateError(f"filter 'dateAdd': {exc}") from exc


def _timestamp(per_second: int, name: str) -> Callable[..., int]:
    def timestamp(
        value: Any,
        timeZone: str | None = None,  # noqa: N803
        existingFormat: str | None = None,  # noqa: N803
    ) -> int:
        try:
            moment, _ = _date_args(value, timeZone, existingFormat)
        except ValueError as exc:
            raise TemplateError(f"filter '{name}': {exc}") from exc
        return _dates.epoch(moment, per_second)

    return timestamp


# -- strings ---------------------------------------------------------------------------------
def f_slugify(value: Any) -> str:
    text = unicodedata.normalize("NFKD", _text(value))
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def f_substring_before(value: Any, separator: str) -> str:
    text = _text(value)
    index = text.find(separator)
    return text if index < 0 else text[:index]


def f_substring_after(value: Any, separator: str) -> str:
    text = _text(value)
    index = text.find(separator)
    return "" if index < 0 else text[index + len(separator) :]


def f_substring_before_last(value: Any, separator: str) -> str:
    text = _text(value)
    index = text.rfind(separator)
    return text if index < 0 or not separator else text[:index]


def f_substring_after_last(value: Any, separator: str) -> str:
    text = _text(value)
    index = text.rfind(separator)
    return "" if index < 0 or not separator else text[index + len(separator) :]


def f_starts_with(value: Any, prefix: str) -> bool:
    return _text(value).startswith(_text(prefix))


def f_ends_with(value: Any, suffix: str) -> bool:
    return _text(value).endswith(_text(suffix))


def _lines(text: str) -> list[str]:
    return re.split(r"(?<=\n)", text)


def _pad(value: Any, amount: int, prefix: str) -> tuple[str, list[str]]:
    text, prefix = _text(value), str(prefix)
    lines = _lines(text)
    _limits.check_text(len(text) + int(amount) * len(prefix) * len(lines), "indented text")
    return prefix * int(amount), lines


def f_indent(value: Any, amount: int, prefix: str = " ") -> str:
    pad, lines = _pad(value, amount, prefix)
    return lines[0] + "".join(pad + line if line.strip("\r\n") else line for line in lines[1:])


def f_nindent(value: Any, amount: int, prefix: str = " ") -> str:
    pad, lines = _pad(value, amount, prefix)
    return "\n" + "".join(pad + line if line.strip("\r\n") else line for line in lines)


def f_escape_char(value: Any, kind: str) -> str:
    text = _text(value)
    kind = str(kind).lower()
    if kind == "single":
        return text.replace("\\", "\\\\").replace("'", "\\'")
    if kind == "double":
        return text.replace("\\", "\\\\").replace('"', '\\"')
    if kind == "shell":
        return text.replace("'", "'\\''")
    raise TemplateError(f"filter 'escapeChar': unknown type '{kind}' (single, double or shell)")


def f_urlencode(value: Any) -> str:
    return urllib.parse.quote_plus(_text(value), safe="*")


def f_urldecode(value: Any) -> str:
    return urllib.parse.unquote_plus(_text(value))


def _digest(name: str) -> Callable[[Any], str]:
    def digest(value: Any) -> str:
        return hashlib.new(name, _text(value).encode("utf-8")).hexdigest()

    return digest


def f_base64encode(value: Any) -> str:
    return base64.b64encode(_text(value).encode("utf-8")).decode("ascii")


def f_base64decode(value: Any) -> str:
    try:
        return base64.b64decode(_text(value), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise TemplateError(f"filter 'base64decode': invalid input ({exc})") from exc


def f_upper(value: Any) -> str:
    return _text(value).upper()


def f_lower(value: Any) -> str:
    return _text(value).lower()


def f_title(value: Any) -> str:
    return re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), _text(value))


def f_capitalize(value: Any) -> str:
    text = _text(value)
    return text[:1].upper() + text[1:]


def f_trim(value: Any) -> str:
    return _text(value).strip()


def f_abbreviate(value: Any, length: int) -> str:
    text, length = _text(value), int(length)
    if len(text) <= length:
        return text
    return text[: max(length - 3, 0)] + "..." if length >= 3 else text[:length]


def f_replace(value: Any, old: Any, new: Any = None, regexp: bool = False) -> str:
    text = _text(value)
    pairs = defined(old).items() if isinstance(old, Mapping) else [(old, new)]
    for search, replacement in pairs:
        search, replacement = _text(search), _text(replacement)
        if regexp:
            text = _replace_regexp(text, search, replacement)
        else:
            count = text.count(search)
            _limits.check_text(len(text) + count * (len(replacement) - len(search)))
            text = text.replace(search, replacement)
    return text


def _replace_regexp(text: str, search: str, replacement: str) -> str:
    """RE2 when it takes the pattern, else a helper process with a deadline
    (``common.bounded``): a backtracking pattern (``(a+)+$``) cannot hang the render."""
    template = re.sub(r"\$(\d+)", r"\\\1", replacement)
    try:
        bounded.check(search)
    except re.error as exc:
        raise TemplateError(f"filter 'replace': invalid regular expression ({exc})") from exc
    seconds = _limits.remaining(bounded.MAX_REGEX_SECONDS)
    try:
        result = bounded.sub(
            search, template, text, _limits.MAX_OUTPUT, seconds, tick=_limits.check_time
        )
    except bounded.ProgramError as exc:
        raise TemplateError(f"filter 'replace': {exc}") from exc
    except bounded.LimitExceeded as exc:
        raise TemplateError(f"filter 'replace': '{search}': {exc}") from exc
    if result is None:
        _limits.check_text(_limits.MAX_OUTPUT + 1)
    return str(result)


def f_split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    text = _text(value)
    if limit is not None and int(limit) > 0:
        return text.split(str(delimiter), int(limit) - 1)
    parts = text.split(str(delimiter))
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return parts


def f_escape(value: Any) -> str:
    return html.escape(_text(value))


# -- collections -----------------------------------------------------------------------------
def f_length(value: Any) -> int:
    value = defined(value)
    if value is None:
        return 0
    if isinstance(value, str | Mapping | list | tuple | set | frozenset):
        return len(value)
    if isinstance(value, Iterable):
        return sum(1 for _ in value)
    return len(to_string(value))


def f_first(value: Any) -> Any:
    value = defined(value)
    if isinstance(value, str):
        return value[:1] or None
    items = _require_list(value, "first")
    return items[0] if items else None


def f_last(value: Any) -> Any:
    value = defined(value)
    if isinstance(value, str):
        return value[-1:] or None
    items = _require_list(value, "last")
    return items[-1] if items else None


def f_join(value: Any, separator: str = "") -> str:
    separator = str(separator)
    parts: list[str] = []
    size = 0
    for item in _require_list(value, "join"):
        text = to_string(item)
        size += len(text) + len(separator)
        _limits.check_text(size, "joined string")
        parts.append(text)
    return separator.join(parts)


def f_default(value: Any, default: Any = None) -> Any:
    if isinstance(value, Undefined) or value is None:
        return default
    if isinstance(value, str) and not value.strip():
        return default
    if isinstance(value, Mapping | list | tuple) and not value:
        return default
    return value


def f_abs(value: Any) -> Any:
    value = defined(value)
    if isinstance(value, str):
        value = f_number(value)
    return abs(value)


def f_sort(value: Any) -> list[Any]:
    try:
        return sorted(_require_list(value, "sort"))
    except TypeError as exc:
        raise TemplateError(f"filter 'sort': cannot compare items ({exc})") from exc


def f_rsort(value: Any) -> list[Any]:
    return list(reversed(f_sort(value)))


def f_reverse(value: Any) -> Any:
    value = defined(value)
    if isinstance(value, str):
        return value[::-1]
    return list(reversed(_require_list(value, "reverse")))


def f_slice(value: Any, fromIndex: int = 0, toIndex: int | None = None) -> Any:  # noqa: N803
    value = defined(value)
    start = int(fromIndex)
    sequence = value if isinstance(value, str) else _require_list(value, "slice")
    end = len(sequence) if toIndex is None else int(toIndex)
    if start < 0 or end > len(sequence) or start > end:
        raise TemplateError(
            f"filter 'slice': indexes {start}..{end} out of bounds (length {len(sequence)})"
        )
    return sequence[start:end]


def f_chunk(value: Any, size: int) -> list[list[Any]]:
    items, size = _require_list(value, "chunk"), int(size)
    if size <= 0:
        raise TemplateError("filter 'chunk': size must be positive")
    return [items[i : i + size] for i in range(0, len(items), size)]


def f_flatten(value: Any) -> list[Any]:
    out: list[Any] = []
    for item in _require_list(value, "flatten"):
        if isinstance(item, list | tuple):
            out.extend(item)
        else:
            out.append(item)
        _limits.check_items(len(out))
    return out


def f_distinct(value: Any) -> list[Any]:
    out: list[Any] = []
    seen: set[Any] = set()
    unhashable: list[Any] = []  # maps and lists: compared one by one (time-limited)
    for item in _require_list(value, "distinct"):
        try:
            if item in seen:
                continue
            seen.add(item)
        except TypeError:
            _limits.check_time()
            if item in unhashable:
                continue
            unhashable.append(item)
        out.append(item)
    return out


def f_merge(value: Any, other: Any) -> Any:
    value, other = defined(value), defined(other)
    if isinstance(value, Mapping) and isinstance(other, Mapping):
        return {**value, **other}
    left, right = _require_list(value, "merge"), _require_list(other, "merge")
    _limits.check_items(len(left) + len(right))
    return left + right


def f_string(value: Any) -> str:
    return _text(value)


def f_raw(value: Any) -> Any:
    return defined(value)


FILTERS: dict[str, Callable[..., Any]] = {
    "json": f_json,
    "toJson": f_json,
    "fromJson": f_from_json,
    "jq": f_jq,
    "yaml": f_yaml,
    "toYaml": f_yaml,
    "keys": f_keys,
    "values": f_values,
    "number": f_number,
    "className": f_class_name,
    "date": f_date,
    "dateAdd": f_date_add,
    "timestamp": _timestamp(1, "timestamp"),
    "timestampMilli": _timestamp(1_000, "timestampMilli"),
    "timestampMicro": _timestamp(1_000_000, "timestampMicro"),
    "timestampNano": _timestamp(1_000_000_000, "timestampNano"),
    "slugify": f_slugify,
    "substringBefore": f_substring_before,
    "substringAfter": f_substring_after,
    "substringBeforeLast": f_substring_before_last,
    "substringAfterLast": f_substring_after_last,
    "startsWith": f_starts_with,
    "endsWith": f_ends_with,
    "indent": f_indent,
    "nindent": f_nindent,
    "escapeChar": f_escape_char,
    "urlencode": f_urlencode,
    "urldecode": f_urldecode,
    "md5": _digest("md5"),
    "sha1": _digest("sha1"),
    "sha256": _digest("sha256"),
    "sha512": _digest("sha512"),
    "base64encode": f_base64encode,
    "base64decode": f_base64decode,
    "upper": f_upper,
    "lower": f_lower,
    "title": f_title,
    "capitalize": f_capitalize,
    "trim": f_trim,
    "abbreviate": f_abbreviate,
    "replace": f_replace,
    "split": f_split,
    "escape": f_escape,
    "e": f_escape,
    "length": f_length,
    "first": f_first,
    "last": f_last,
    "join": f_join,
    "default": f_default,
    "abs": f_abs,
    "sort": f_sort,
    "rsort": f_rsort,
    "reverse": f_reverse,
    "slice": f_slice,
    "chunk": f_chunk,
    "flatten": f_flatten,
    "distinct": f_distinct,
    "merge": f_merge,
    "string": f_string,
    "raw": f_raw,
}


# -- tests -----------------------------------------------------------------------------------
def t_defined(value: Any) -> bool:
    return not isinstance(value, Undefined)


def t_null(value: Any) -> bool:
    return value is None or isinstance(value, Undefined)


def t_empty(value: Any) -> bool:
    value = defined(value)
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return not value
    return False


def t_json(value: Any) -> bool:
    value = defined(value)
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def t_even(value: Any) -> bool:
    return int(defined(value)) % 2 == 0


def t_odd(value: Any) -> bool:
    return int(defined(value)) % 2 == 1


def t_iterable(value: Any) -> bool:
    return isinstance(defined(value), list | tuple | set | frozenset)


def t_map(value: Any) -> bool:
    return isinstance(defined(value), Mapping)


def t_nullish(value: Any) -> bool:
    """Internal test behind ``??``: null or undefined."""
    return value is None or isinstance(value, Undefined)


TESTS: dict[str, Callable[..., bool]] = {
    "defined": t_defined,
    "null": t_null,
    "empty": t_empty,
    "json": t_json,
    "even": t_even,
    "odd": t_odd,
    "iterable": t_iterable,
    "map": t_map,
}
