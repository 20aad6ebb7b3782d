"""Dates for the ``date``/``dateAdd``/``timestamp*`` filters: Java ``DateTimeFormatter`` patterns.

Inputs are datetimes, dates, ISO-8601 strings (``Z``, offsets and ``[Zone]`` suffixes) or epoch
seconds; patterns use Java's letters (``yyyy-MM-dd'T'HH:mm:ss.SSSXXX``) or Kestra's named formats.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._output import format_offset

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)

NAMED_FORMATS = {
    "iso": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "sql": "yyyy-MM-dd HH:mm:ss.SSSSSS",
    "iso_sec": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "sql_sec": "yyyy-MM-dd HH:mm:ss",
    "iso_milli": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
    "sql_milli": "yyyy-MM-dd HH:mm:ss.SSS",
    "iso_date_time": "yyyy-MM-dd'T'HH:mm:ssFXXX",
    "iso_offset_date_time": "yyyy-MM-dd'T'HH:mm:ssFXXX",
    "iso_zoned_date_time": "yyyy-MM-dd'T'HH:mm:ssFXXX'['VV']'",
    "iso_local_date_time": "yyyy-MM-dd'T'HH:mm:ssF",
    "iso_instant": "INSTANT",
    "iso_date": "yyyy-MM-ddXXX",
    "iso_offset_date": "yyyy-MM-ddXXX",
    "iso_local_date": "yyyy-MM-dd",
    "iso_time": "HH:mm:ssFXXX",
    "iso_offset_time": "HH:mm:ssFXXX",
    "iso_local_time": "HH:mm:ssF",
    "iso_ordinal_date": "yyyy-DDDXXX",
    "iso_week_date": "YYYY-'W'ww-eXXX",
    "basic_iso_date": "yyyyMMddXX",
    "rfc_1123_date_time": "EEE, d MMM yyyy HH:mm:ss 'GMT'",
}
DEFAULT_FORMAT = NAMED_FORMATS["iso"]

_MONTHS = list(calendar.month_name)
_DAYS = list(calendar.day_name)
_PATTERN_RE = re.compile(r"'(?:[^']|'')*'|([A-Za-z])\1*|.", re.S)


def zone(name: str | None) -> dt.tzinfo | None:
    if name is None:
        return None
    if name in ("UTC", "Z", "GMT"):
        return _UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        match = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?", name)
        if match is None:
            raise ValueError(f"unknown time zone '{name}'") from exc
        sign = 1 if match.group(1) == "+" else -1
        offset = dt.timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
        return dt.timezone(sign * offset)


def to_datetime(value: Any, existing_format: str | None = None) -> dt.datetime:
    """Convert a filter input to an aware datetime (naive values are taken as UTC)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=_UTC)
    if isinstance(value, bool):
        raise ValueError(f"cannot convert {value!r} to a date")
    if isinstance(value, int | float):
        return _EPOCH + dt.timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        if existing_format:
            parsed = dt.datetime.strptime(text, _strptime_pattern(existing_format))
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)
        if re.fullmatch(r"-?\d+", text):
            return _EPOCH + dt.timedelta(seconds=int(text))
        zone_name = None
        bracket = re.fullmatch(r"(.*)\[([^\]]+)\]", text)
        if bracket:
            text, zone_name = bracket.group(1), bracket.group(2)
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"cannot parse '{value}' as a date") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone(zone_name) or _UTC)
        elif zone_name:
            parsed = parsed.astimezone(zone(zone_name))
        return parsed
    raise ValueError(f"cannot convert a value of type {type(value).__name__} to a date")


def _strptime_pattern(pattern: str) -> str:
    pattern = NAMED_FORMATS.get(pattern, pattern)
    mapping = {
        "yyyy": "%Y",
        "uuuu": "%Y",
        "yy": "%y",
        "MMMM": "%B",
        "MMM": "%b",
        "MM": "%m",
        "M": "%m",
        "dd": "%d",
        "d": "%d",
        "HH": "%H",
        "H": "%H",
        "hh": "%I",
        "h": "%I",
        "mm": "%M",
        "m": "%M",
        "ss": "%S",
        "s": "%S",
        "a": "%p",
        "EEEE": "%A",
        "EEE": "%a",
        "DDD": "%j",
        "z": "%Z",
    }
    out: list[str] = []
    for match in _PATTERN_RE.finditer(pattern):
        token = match.group(0)
        if token.startswith("'"):
            out.append(token[1:-1].replace("''", "'").replace("%", "%%") if len(token) > 2 else "'")
        elif token[0] == "S":
            out.append("%f")
        elif token[0] in "XxZ":
            out.append("%z")
        elif token in mapping:
            out.append(mapping[token])
        elif token[0].isalpha():
            raise ValueError(f"unsupported pattern letters '{token}' in '{pattern}'")
        else:
            out.append(token.replace("%", "%%"))
    return "".join(out)


def _offset_text(value: dt.datetime, letters: str) -> str:
    offset = value.utcoffset() or dt.timedelta(0)
    letter, count = letters[0], len(letters)
    if letter == "X" and offset == dt.timedelta(0):
        return "Z"
    full = format_offset(offset)  # +01:00
    compact = full.replace(":", "")
    if letter in "Xx":
        if count == 1:
            return full[:3] if full.endswith(":00") else compact
        return compact if count in (2, 4) else full
    if letter == "Z":
        if count <= 3:
            return compact
        if count == 4:
            return "GMT" if offset == dt.timedelta(0) else "GMT" + full
        return "Z" if offset == dt.timedelta(0) else full
    # O: localized offset
    if offset == dt.timedelta(0):
        return "GMT"
    hours = full[:3].replace("+0", "+").replace("-0", "-")
    return "GMT" + (hours if full.endswith(":00") and count == 1 else full)


def _fraction(value: dt.datetime, count: int | None) -> str:
    digits = f"{value.microsecond:06d}000"
    if count is None:  # Java ISO: as many digits as needed, none when zero
        stripped = digits.rstrip("0")
        return "." + stripped if stripped else ""
    return digits[:count] if count <= 9 else digits.ljust(count, "0")


def _zone_name(value: dt.datetime, full: bool) -> str:
    tz = value.tzinfo
    key = getattr(tz, "key", None)
    if full and key:
        return str(key)
    if tz is _UTC or value.utcoffset() == dt.timedelta(0) and key is None:
        return "Z" if full else "UTC"
    return value.tzname() or format_offset(value.utcoffset() or dt.timedelta(0))


def format_date(value: dt.datetime, pattern: str) -> str:
    """Format an aware datetime with a Java pattern or a Kestra named format."""
    pattern = NAMED_FORMATS.get(pattern, pattern)
    if pattern == "INSTANT":
        utc = value.astimezone(_UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S") + _fraction(utc, None) + "Z"
    out: list[str] = []
    for match in _PATTERN_RE.finditer(pattern):
        token = match.group(0)
        if token.startswith("'"):
            out.append(token[1:-1].replace("''", "'") if len(token) > 2 else "'")
            continue
        letter, count = token[0], len(token)
        if not letter.isalpha() or letter in "[]":
            out.append(token if letter not in "[]" else "")
            continue
        out.append(_field(value, letter, count, token))
    return "".join(out)


def _number(number: int, count: int) -> str:
    return str(number).zfill(count)


def _field(value: dt.datetime, letter: str, count: int, token: str) -> str:
    if letter in "yuY":
        year = value.isocalendar().year if letter == "Y" else value.year
        return _number(year % 100, 2) if count == 2 else _number(year, count)
    if letter in "ML":
        if count >= 4:
            return _MONTHS[value.month]
        if count == 3:
            return _MONTHS[value.month][:3]
        return _number(value.month, count)
    if letter == "d":
        return _number(value.day, count)
    if letter == "D":
        return _number(value.timetuple().tm_yday, count)
    if letter == "E":
        name = _DAYS[value.weekday()]
        return name if count >= 4 else name[:3]
    if letter == "e":
        return str(value.isoweekday())
    if letter == "w":
        return _number(value.isocalendar().week, count)
    if letter == "Q":
        return str((value.month - 1) // 3 + 1)
    if letter == "a":
        return "AM" if value.hour < 12 else "PM"
    if letter == "H":
        return _number(value.hour, count)
    if letter == "k":
        return _number(value.hour or 24, count)
    if letter == "K":
        return _number(value.hour % 12, count)
    if letter == "h":
        return _number(value.hour % 12 or 12, count)
    if letter == "m":
        return _number(value.minute, count)
    if letter == "s":
        return _number(value.second, count)
    if letter == "S":
        return _fraction(value, count)
    if letter == "F":
        return _fraction(value, None)
    if letter == "n":
        return str(value.microsecond * 1000)
    if letter == "A":
        return str(((value.hour * 60 + value.minute) * 60 + value.second) * 1000)
    if letter in "XxZO":
        return _offset_text(value, token)
    if letter == "V":
        return _zone_name(value, True)
    if letter == "z":
        return _zone_name(value, count >= 4)
    if letter == "G":
        return "AD"
    raise ValueError(f"unsupported pattern letters '{token}'")


_UNITS = {
    "NANOS": dt.timedelta(microseconds=0.001),
    "MICROS": dt.timedelta(microseconds=1),
    "MILLIS": dt.timedelta(milliseconds=1),
    "SECONDS": dt.timedelta(seconds=1),
    "MINUTES": dt.timedelta(minutes=1),
    "HOURS": dt.timedelta(hours=1),
    "HALF_DAYS": dt.timedelta(hours=12),
    "DAYS": dt.timedelta(days=1),
    "WEEKS": dt.timedelta(weeks=1),
}
_MONTH_UNITS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200, "MILLENNIA": 12000}


def add(value: dt.datetime, amount: int, unit: str) -> dt.datetime:
    """``value`` plus ``amount`` ChronoUnits (``DAYS``, ``MONTHS``...), calendar-aware."""
    unit = unit.upper()
    if unit in _UNITS:
        if unit == "DAYS" and isinstance(value.tzinfo, ZoneInfo):
            naive = value.replace(tzinfo=None) + dt.timedelta(days=amount)
            return naive.replace(tzinfo=value.tzinfo)
        return value + _UNITS[unit] * amount
    if unit in _MONTH_UNITS:
        months = value.year * 12 + value.month - 1 + amount * _MONTH_UNITS[unit]
        year, month = divmod(months, 12)
        day = min(value.day, calendar.monthrange(year, month + 1)[1])
        return value.replace(year=year, month=month + 1, day=day)
    raise ValueError(
        f"unknown unit '{unit}' (expected one of {', '.join([*_UNITS, *_MONTH_UNITS])})"
    )


def epoch(value: dt.datetime, per_second: int) -> int:
    delta = value - _EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    if per_second >= 1_000_000:
        return micros * (per_second // 1_000_000)
    return micros // (1_000_000 // per_second)
