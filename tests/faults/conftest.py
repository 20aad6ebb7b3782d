"""The fault suite prints its report at the end of the session (and wrote it to
``build/faults-report.md`` as it went)."""

from __future__ import annotations

import pytest

from tests.faults import report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not report.SECTIONS:
        return
    terminalreporter.section("fault injection report")
    for line in report.render().splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {report.REPORT_PATH})")
