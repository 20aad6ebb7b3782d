"""``python -m tests.bench.first_paint [--count N] [--runs R]``: the executions page's first
paint in Debian's chromium with N executions (default 100,000) in the SQLite repository.

Seeds the executions straight into the repository (``tests.ui.seeding``), starts ``lanner
server local`` on them, then opens ``/ui/executions`` R times, each in a fresh browser context
(cold HTTP cache), and prints, per run and as medians: first contentful paint (the page's
frame), the rows painted (first execution row in the DOM, sampled each animation frame), and
the ``/executions/search`` call as the browser saw it. It measures; it never asserts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.bench._server import LocalServer
from tests.ui.conftest import CHROMIUM, LAUNCH_ARGS, VIEWPORT
from tests.ui.seeding import seed_executions

_MEASURE = """() => {
  const row = document.querySelector("[data-testid=executions-table] tbody tr[data-execution]");
  if (!row) return null;
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  const search = performance
    .getEntriesByType("resource")
    .find((e) => e.name.includes("/executions/search"));
  return {
    rows: performance.now(),
    fcp: fcp ? fcp.startTime : null,
    searchStart: search ? search.startTime : null,
    search: search ? search.responseEnd - search.startTime : null,
  };
}"""


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanner-first-paint-") as tmp:
        data_dir = Path(tmp)
        started = time.monotonic()
        seed_executions(data_dir, args.count)
        _progress(f"seeded {args.count} executions in {time.monotonic() - started:.1f} s")
        server = LocalServer(data_dir)
        server.start()
        try:
            runs = []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
                )
                for n in range(args.runs):
                    context = browser.new_context(viewport=VIEWPORT)
                    page = context.new_page()
                    page.goto(f"{server.url}/ui/executions", wait_until="commit")
                    result = page.wait_for_function(_MEASURE, polling="raf", timeout=60_000)
                    values = result.json_value()
                    total = page.get_by_test_id("total").inner_text()
                    _progress(f"run {n + 1}: {values} ({total})")
                    runs.append(values)
                    context.close()
                browser.close()
        finally:
            server.stop()

    def cell(key: str, run: dict) -> str:
        return "-" if run[key] is None else f"{run[key]:.0f}"

    keys = ("fcp", "searchStart", "search", "rows")
    print(
        f"| {args.count} executions | first contentful paint ms | search sent at ms "
        "| /executions/search took ms | rows painted ms |"
    )
    print("|---|---:|---:|---:|---:|")
    for n, run in enumerate(runs, 1):
        print(f"| run {n} | " + " | ".join(cell(k, run) for k in keys) + " |")
    medians = {k: statistics.median(r[k] for r in runs if r[k] is not None) for k in keys}
    print("| median | " + " | ".join(f"{medians[k]:.0f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
