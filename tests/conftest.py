"""Session-wide test setup: the infra fixtures, and the suites that need data from outside.

The conformance suites read Kestra's test flows from ``$LANNER_CONFORMANCE_DIR`` (default
``../shared/conformance``). A clone on its own has no such folder: its suites are then not
collected at all (neither passed nor skipped) and the summary says, in one line, what did not run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import manifest

pytest_plugins = ["tests.infra.fixtures"]

_CONFORMANCE_SUITES = [manifest.REPOSITORY_ROOT / suite for suite in manifest.SUITES]
_not_collected: list[Path] = []


def _reads_conformance_data(path: Path) -> bool:
    return any(path == suite or suite in path.parents for suite in _CONFORMANCE_SUITES)


class _NotCollected(pytest.Module):
    """A test module of a conformance suite while the data is absent: never imported (it reads
    the data at import), it yields no test, so nothing counts as passed or skipped."""

    def collect(self) -> list[pytest.Item]:
        return []


def pytest_pycollect_makemodule(
    module_path: Path, parent: pytest.Collector
) -> pytest.Module | None:
    # this hook, unlike pytest_ignore_collect, also sees the files named on the command line
    if _reads_conformance_data(module_path) and not manifest.available():
        _not_collected.append(module_path)
        return _NotCollected.from_parent(parent, path=module_path)
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _not_collected:
        terminalreporter.write_line(manifest.absent_line(), yellow=True, bold=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    # fixtures read the outcome of the test's call at teardown (``item.rep_call``): the
    # ``lanner_process`` fixture dumps its processes' stacks when the test failed
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
