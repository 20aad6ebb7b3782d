"""The security suites report their sizes at the end of the run (``make test`` shows them)."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ssti = sys.modules.get("tests.security.test_ssti")
    if ssti is not None and ssti.COUNTS["errors"] + ssti.COUNTS["strings"]:
        counts = ssti.COUNTS
        terminalreporter.write_line(
            f"SSTI corpus: {counts['payloads']} payloads "
            f"({counts['errors']} refused with a template error, "
            f"{counts['strings']} rendered to a harmless string; "
            f"{counts.get('hangs', 0)} never-ending jq programs and regexes: cut, or linear in RE2)"
        )
    fuzz = sys.modules.get("tests.security.test_fuzz_flow")
    if fuzz is not None and fuzz.EXAMPLES:
        shown = ", ".join(f"{name} {count}" for name, count in fuzz.EXAMPLES.items())
        terminalreporter.write_line(f"hypothesis examples: {shown}")
    api = sys.modules.get("tests.security.test_api_schemathesis")
    if api is not None and api.EXAMPLES["count"]:
        terminalreporter.write_line(
            f"schemathesis: {len(api.OPERATIONS)} operations, "
            f"{api.EXAMPLES['count']} examples "
            f"(max_examples={api.MAX_EXAMPLES} per operation and generation mode)"
        )
    flows = sys.modules.get("tests.security.test_flow_sandbox")
    if flows is not None and flows.EXECUTED["payloads"]:
        terminalreporter.write_line(
            f"SSTI through executions: {flows.EXECUTED['payloads']} payloads"
        )
