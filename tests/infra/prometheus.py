"""Reading a component's Prometheus /metrics text in tests."""

from __future__ import annotations

import re


def sample_value(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly ``labels`` in ``text`` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, value = line.rsplit(" ", 1)
        found = dict(re.findall(r'(\w+)="([^"]*)"', sample))
        if sample.split("{")[0] == name and found == labels:
            return float(value)
    return 0.0
