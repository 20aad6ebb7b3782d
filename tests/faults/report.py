"""The fault suite's report: the table of each fault and the invariant counts, printed in the
pytest terminal summary (``tests/faults/conftest.py``) and written to ``build/faults-report.md``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPORT_PATH = Path(__file__).resolve().parents[2] / "build" / "faults-report.md"

# title -> markdown section, in the order the tests wrote them
SECTIONS: dict[str, str] = {}


@dataclass
class FaultRow:
    fault: str
    lasted: float  # seconds from the injection to the end of the fault (0 for a kill)
    worst: float | None = None  # largest creation -> end time of an execution asked in the window
    ended: float | None = None  # seconds from the end of the fault to the backlog ended
    searchable: float | None = None  # ... to the backlog searchable in its final state
    refused: dict[str, int] = field(default_factory=dict)  # creations not answered 200
    note: str = ""


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def fault_table(rows: list[FaultRow]) -> str:
    lines = [
        "| fault | fault lasted s | worst execution latency s | backlog ended after s | "
        "backlog searchable after s | creations not accepted | note |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(row.refused.items())) or "0"
        lines.append(
            f"| {row.fault} | {_seconds(row.lasted)} | {_seconds(row.worst)} | "
            f"{_seconds(row.ended)} | {_seconds(row.searchable)} | {refused} | {row.note} |"
        )
    return "\n".join(lines)


def count_table(counts: list[tuple[str, object, object]]) -> str:
    lines = ["| count | value | must be |", "|---|---:|---:|"]
    lines += [f"| {name} | {value} | {must} |" for name, value, must in counts]
    return "\n".join(lines)


def add_section(title: str, body: str) -> None:
    SECTIONS[title] = body
    write()


def render() -> str:
    parts = ["# Fault injection report (`make test-faults`)", ""]
    for title, body in SECTIONS.items():
        parts += [f"## {title}", "", body, ""]
    return "\n".join(parts)


def write() -> None:
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(render())
