"""``make bench`` / ``python -m tests.bench [--quick] [--mode embedded|kafka|both]``.

Embedded mode starts ``lanner server local`` as a subprocess (temporary data dir, free port);
Kafka mode starts a Kafka broker on this machine and the components as processes (an executor,
a worker, a webserver with its indexer). Each deploys the flows through the API, then:

* ``benchmark01`` (OutputValues then Log) created through the API at each offered rate for a
  window, open-loop: creations are sent on schedule whether or not earlier ones have finished;
* a flow of 40 sequential ``Return`` tasks, run 5 times one after the other.

Kafka mode measures after ``--warmup`` seconds of unmeasured load: a fresh broker's JVM spends
as much CPU compiling as serving during its first minute, which no running cluster pays.

Prints progress lines to stderr and a markdown table per mode to stdout, with the CPU each
process used during the load. It measures; it never asserts.
See ``_load`` for how throughput and latency are measured.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ._flows import BENCHMARK01, SEQUENTIAL_TASKS, sequential_flow
from ._kafka import CpuMeter, kafka_deployment
from ._load import RateResult, SequentialResult, deploy, open_loop, sequential_runs
from ._server import LocalServer

RATES = (600, 1200, 3000, 6000)
WARMUP_RATE = 1200


def _nothing() -> None:
    pass


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_table(rates: list[RateResult], sequential: SequentialResult | None) -> str:
    lines = [
        "| benchmark01 offered /min | window | created | achieved /min | p50 ms | p99 ms "
        "| max ms | failed | not finished | create errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rates:
        lines.append(
            f"| {r.offered_per_min} | {r.seconds:g} s | {r.created} | {r.achieved_per_min:.0f} "
            f"| {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | {_ms(r.max_ms)} | {r.failed} "
            f"| {r.unfinished} | {r.create_errors} |"
        )
    if sequential is not None:
        median = sequential.median
        runs = ", ".join(f"{s:.3f}" for s in sequential.runs)
        lines += [
            "",
            "| sequential Return tasks | runs | median start→end | all runs (s) | states |",
            "|---:|---:|---:|---|---|",
            f"| {sequential.tasks} | {len(sequential.states)} "
            f"| {'-' if median is None else f'{median:.3f} s'} | {runs} "
            f"| {', '.join(sorted(set(sequential.states)))} |",
        ]
    return "\n".join(lines)


async def run(
    args: argparse.Namespace,
    url: str,
    warmup: float = 0.0,
    measuring: Callable[[], None] = _nothing,
) -> tuple[str, int]:
    """The table, and how many executions the load created (for the CPU per execution).

    ``warmup`` seconds of unmeasured load come first (a JVM compiles its hot paths during its
    first minute: a freshly started broker costs twice its steady CPU); ``measuring`` is called
    when the measured load starts.
    """
    limits = httpx.Limits(
        max_connections=args.connections, max_keepalive_connections=args.connections
    )
    timeout = httpx.Timeout(60.0)
    rates: list[RateResult] = []
    sequential: SequentialResult | None = None
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        await deploy(client, BENCHMARK01)
        await deploy(client, sequential_flow(SEQUENTIAL_TASKS))
        stamp = time.strftime("%H%M%S")
        if warmup > 0:
            _progress(f"warming up: benchmark01 at {WARMUP_RATE}/min for {warmup:g}s, unmeasured")
            await open_loop(
                client,
                "benchmark01",
                WARMUP_RATE,
                warmup,
                f"warmup-{stamp}",
                drain_seconds=args.drain,
                progress=_progress,
                concurrency=args.connections,
            )
        measuring()
        if not args.skip_rates:
            for rate in args.rates:
                _progress(f"benchmark01 at {rate}/min for {args.seconds:g}s")
                result = await open_loop(
                    client,
                    "benchmark01",
                    rate,
                    args.seconds,
                    f"r{rate}-{stamp}",
                    drain_seconds=args.drain,
                    progress=_progress,
                    concurrency=args.connections,
                )
                rates.append(result)
                _progress(
                    f"  => achieved {result.achieved_per_min:.0f}/min, p50 {_ms(result.p50_ms)} "
                    f"ms, p99 {_ms(result.p99_ms)} ms, {result.failed} failed, "
                    f"{result.unfinished} not finished"
                )
        if not args.skip_sequential:
            _progress(f"{SEQUENTIAL_TASKS} sequential Return tasks, {args.runs} runs")
            sequential = await sequential_runs(
                client,
                f"sequential{SEQUENTIAL_TASKS}",
                SEQUENTIAL_TASKS,
                args.runs,
                timeout=60.0,
                progress=_progress,
            )
    created = sum(r.created for r in rates) + (len(sequential.runs) if sequential else 0)
    return render_table(rates, sequential), created


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="5 s windows (development)")
    parser.add_argument("--seconds", type=float, default=None, help="window per rate (30)")
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES))
    parser.add_argument("--runs", type=int, default=5, help="runs of the sequential flow")
    parser.add_argument("--drain", type=float, default=None, help="max wait after a window (60)")
    parser.add_argument("--connections", type=int, default=64, help="HTTP connections")
    parser.add_argument("--url", help="use this running server instead of starting one")
    parser.add_argument(
        "--wrap", default="", help="prefix of the server command, e.g. 'py-spy record -o x --'"
    )
    parser.add_argument("--data-dir", type=Path, help="keep the server's data here")
    parser.add_argument("--skip-rates", action="store_true")
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--mode", choices=["embedded", "kafka", "both"], default="both")
    parser.add_argument(
        "--warmup", type=float, default=None, help="unmeasured load first, Kafka mode (30 s)"
    )
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = 15.0 if args.quick else 30.0
    if args.seconds is None:
        args.seconds = 5.0 if args.quick else 30.0
    if args.drain is None:
        args.drain = 20.0 if args.quick else 60.0
    return args


def _cpu_table(used: dict[str, float], executions: int) -> str:
    lines = ["| process | CPU s during the load | CPU ms per execution |", "|---|---:|---:|"]
    for name, seconds in sorted(used.items(), key=lambda item: -item[1]):
        per = f"{1000 * seconds / executions:.1f}" if executions else "-"
        lines.append(f"| {name} | {seconds:.1f} | {per} |")
    return "\n".join(lines)


def _measured(args: argparse.Namespace, url: str, meter: CpuMeter, warmup: float = 0.0) -> str:
    meter.mark()
    table, executions = asyncio.run(run(args, url, warmup, meter.mark))
    return f"{table}\n\n{_cpu_table(meter.used(), executions)}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.url:
        print(asyncio.run(run(args, args.url))[0], flush=True)
        return
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lanner-bench-") as tmp:
        if args.mode in ("embedded", "both"):
            data_dir = args.data_dir or Path(tmp) / "embedded"
            data_dir.mkdir(parents=True, exist_ok=True)
            server = LocalServer(data_dir, wrapper=shlex.split(args.wrap))
            _progress(f"starting {' '.join(server.argv())}")
            server.start()
            try:
                assert server.process is not None
                meter = CpuMeter({"lanner server local": server.process})
                out.append(
                    "### Embedded (lanner server local)\n\n" + _measured(args, server.url, meter)
                )
            finally:
                _progress("stopping the server")
                server.stop()
        if args.mode in ("kafka", "both"):
            with kafka_deployment(Path(tmp) / "kafka", _progress) as deployment:
                meter = CpuMeter(dict(deployment.processes))
                out.append(
                    "### Kafka (executor, worker, webserver + indexer, Kafka: one process each)"
                    f"\n\nAfter {args.warmup:g} s of unmeasured load at {WARMUP_RATE}/min (the "
                    "broker's JIT compiles first).\n\n"
                    + _measured(args, deployment.url, meter, args.warmup)
                )
    print("\n\n".join(out), flush=True)


if __name__ == "__main__":
    main()
