"""``python -m tests.bench.cpu``: CPU seconds the embedded server spends per execution.

Latency on a shared machine depends on what else runs; the server's own CPU time does much
less. This starts ``lanner server local`` (as ``make bench`` does), deploys the bench flows,
then reads the process's user + system CPU time (``/proc/<pid>/stat``, all threads) around:

* an idle window (what the polling loops cost with nothing to do);
* ``--executions`` runs of ``benchmark01`` created at ``--rate`` per minute, until all ended;
* ``--runs`` runs of the flow of 40 sequential ``Return`` tasks, one after the other.

Prints one markdown table; ``--repeat`` runs each scenario several times on the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ._flows import BENCHMARK01, SEQUENTIAL_TASKS, sequential_flow
from ._load import _count_terminal, _create, deploy, sequential_runs
from ._server import LocalServer

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _executions(client: httpx.AsyncClient, count: int, rate: int, label: str) -> float:
    """Creates ``count`` executions at ``rate``/min, waits until they all ended; wall seconds."""
    limit = asyncio.Semaphore(32)
    start = time.monotonic()

    async def one() -> None:
        async with limit:
            await _create(client, "benchmark01", label, {"name": "bench"})

    tasks = []
    for i in range(count):
        delay = start + i * 60.0 / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if await _count_terminal(client, label) >= count:
            break
        await asyncio.sleep(0.5)
    else:
        _progress(f"  {label}: not all ended within 120 s")
    return time.monotonic() - start


async def run(args: argparse.Namespace, server: LocalServer) -> str:
    assert server.process is not None and server.process.pid is not None
    pid = server.process.pid
    idle: list[float] = []
    per_1000: list[float] = []
    per_run: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as client:
        await deploy(client, BENCHMARK01)
        await deploy(client, sequential_flow(SEQUENTIAL_TASKS))
        await asyncio.sleep(2)
        for repeat in range(args.repeat):
            before = cpu_seconds(pid)
            await asyncio.sleep(args.idle)
            idle.append((cpu_seconds(pid) - before) / args.idle)
            _progress(f"idle: {idle[-1] * 100:.1f}% of a core")

            before = cpu_seconds(pid)
            label = f"cpu{repeat}-{time.strftime('%H%M%S')}"
            wall = await _executions(client, args.executions, args.rate, label)
            cost = cpu_seconds(pid) - before
            per_1000.append(cost / args.executions * 1000)
            _progress(
                f"{args.executions} x benchmark01 at {args.rate}/min: {cost:.2f} CPU s in "
                f"{wall:.1f} s wall = {per_1000[-1]:.2f} CPU s per 1000"
            )

            before = cpu_seconds(pid)
            result = await sequential_runs(
                client,
                f"sequential{SEQUENTIAL_TASKS}",
                SEQUENTIAL_TASKS,
                args.runs,
                timeout=60.0,
                progress=lambda m: None,
            )
            per_run.append((cpu_seconds(pid) - before) / args.runs)
            _progress(
                f"sequential x{args.runs}: {per_run[-1]:.3f} CPU s per run, median "
                f"{result.median or 0:.3f} s"
            )

    def cell(values: list[float], fmt: str) -> str:
        shown = ", ".join(format(v, fmt) for v in values)
        return f"{format(statistics.median(values), fmt)} ({shown})"

    return "\n".join(
        [
            "| idle CPU (% of a core) | CPU s per 1000 benchmark01 | CPU s per 40-task run |",
            "|---:|---:|---:|",
            f"| {cell([v * 100 for v in idle], '.1f')} | {cell(per_1000, '.2f')} "
            f"| {cell(per_run, '.3f')} |",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cpu", description=__doc__)
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=3000, help="creations per minute")
    parser.add_argument("--runs", type=int, default=5, help="runs of the sequential flow")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of the idle window")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--wrap", default="", help="prefix of the server command")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lanner-cpu-") as tmp:
        server = LocalServer(Path(tmp), wrapper=shlex.split(args.wrap))
        server.start()
        try:
            table = asyncio.run(run(args, server))
        finally:
            server.stop()
    print(table, flush=True)


if __name__ == "__main__":
    main()
