"""ISO-8601 durations as Kestra writes them (``PT1S``, ``PT0.25S``, ``P1DT2H30M``, ``-PT5M``)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"^(?P<sign>[-+])?P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


def parse_iso_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match or text.strip().upper() in ("P", "PT", "-P", "-PT"):
        raise ValueError(f"'{text}' is not an ISO-8601 duration (examples: PT30S, PT1H, P1D)")
    parts = {k: float(v) for k, v in match.groupdict().items() if v and k != "sign"}
    delta = timedelta(**parts)
    return -delta if match.group("sign") == "-" else delta


def format_iso_duration(delta: timedelta) -> str:
    total = delta.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rem = divmod(total, 3600)
    minutes, seconds = divmod(rem, 60)
    out = f"{sign}PT"
    if hours:
        out += f"{int(hours)}H"
    if minutes:
        out += f"{int(minutes)}M"
    if seconds or out.endswith("PT"):
        out += f"{seconds:g}S"
    return out
