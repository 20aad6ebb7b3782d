"""``python -m tests.bench.scheduler``: what the scheduler costs with many triggers.

* one tick with 10,000 Schedule triggers all due at once (target: under 1 s), and one with
  none due (the cost of a quiet second);
* start-up with 100,000 flows (each with a Schedule trigger) in the repository: loading them
  and the first tick (target: under 10 s).

On the embedded backends (SQLite queue and repository in a temporary directory), with the
scheduler driven by an injected clock. Prints a markdown table; measures, never asserts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common.queue.sqlite import SqliteDatabase, SqliteQueue
from common.repository.base import FlowRecord
from common.repository.sqlite import sqlite_repositories
from common.settings import Settings
from scheduler import Scheduler

T0 = datetime(2026, 1, 5, 9, 0, 30, tzinfo=UTC)


def _source(i: int) -> str:
    return (
        f"id: f{i:06d}\nnamespace: bench.sched\ntasks:\n"
        "  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: m\n"
        "triggers:\n  - id: every-minute\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        '    cron: "* * * * *"\n'
    )


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _scheduler(base: Path, flows: int) -> tuple[Scheduler, _Clock, float]:
    """A scheduler over ``flows`` stored flows (stored here unless ``flows`` is 0: a restart
    on what the previous one stored); returns it, its clock and the load time."""
    base.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(str(base / "lanner.db"))
    repositories = sqlite_repositories(db)
    for i in range(flows):
        repositories.flows.save(FlowRecord("main", "bench.sched", f"f{i:06d}", 1, _source(i), T0))
    clock = _Clock()
    scheduler = Scheduler(SqliteQueue(db), repositories, Settings(data_dir=base), clock)
    started = time.perf_counter()
    scheduler.load()
    scheduler.tick()  # first evaluation: every trigger gets its state
    return scheduler, clock, time.perf_counter() - started


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.scheduler")
    parser.add_argument("--triggers", type=int, default=10_000)
    parser.add_argument("--startup-flows", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lanner-bench-sched-") as tmp:
        _progress(f"storing {args.triggers} flows with a Schedule trigger")
        scheduler, clock, _ = _scheduler(Path(tmp) / "ticks", args.triggers)
        due, quiet = [], []
        for n in range(args.ticks):
            clock.now = T0 + timedelta(minutes=n + 1)  # every trigger is due once
            started = time.perf_counter()
            emitted = scheduler.tick()
            due.append(time.perf_counter() - started)
            _progress(f"tick {n + 1}: {emitted} executions in {due[-1]:.2f} s")
            clock.now += timedelta(seconds=1)  # nothing due
            started = time.perf_counter()
            scheduler.tick()
            quiet.append(time.perf_counter() - started)
        rows.append(
            f"| one tick, {args.triggers} triggers all due | {statistics.median(due):.3f} s "
            f"| {max(due):.3f} s | < 1 s |"
        )
        rows.append(
            f"| one tick, {args.triggers} triggers none due | {statistics.median(quiet):.3f} s "
            f"| {max(quiet):.3f} s | |"
        )
        _progress(f"storing {args.startup_flows} flows, then starting a scheduler on them")
        first, _, took = _scheduler(Path(tmp) / "startup", args.startup_flows)
        first.stop()
        rows.append(
            f"| start-up with {args.startup_flows} flows, no trigger state yet (load + first "
            f"tick) | {took:.2f} s | | < 10 s |"
        )
        _progress("restarting a scheduler on them (their trigger states stored)")
        _, _, took = _scheduler(Path(tmp) / "startup", 0)
        rows.append(
            f"| restart with {args.startup_flows} flows and their states (load + first tick) "
            f"| {took:.2f} s | | < 10 s |"
        )
    print("### Scheduler (embedded backends)\n")
    print("| measure | median | max | target |\n|---|---:|---:|---|")
    print("\n".join(rows), flush=True)


if __name__ == "__main__":
    main()
