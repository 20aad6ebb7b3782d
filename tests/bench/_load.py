"""Open-loop load and the measurements read back from the API.

Latency of an execution = its end date (``state.endDate``, the date of its terminal state) minus
its CREATED date (``state.startDate``, the first history entry, set by the webserver when the
POST is handled). Both dates come from the server's clock, so client-side scheduling jitter and
polling never enter the measure.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from ._flows import NAMESPACE

TERMINAL = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED")
Progress = Callable[[str], None]


@dataclass
class RateResult:
    offered_per_min: int
    seconds: float
    created: int = 0
    create_errors: int = 0
    terminal: int = 0
    failed: int = 0
    unfinished: int = 0
    achieved_per_min: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    creator_lag_ms: float = 0.0  # how late the last creation was sent (client saturation)


@dataclass
class SequentialResult:
    tasks: int
    runs: list[float] = field(default_factory=list)  # seconds, start -> end
    states: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def deploy(client: httpx.AsyncClient, source: str) -> None:
    response = await client.post(
        "/api/v1/flows", content=source, headers={"content-type": "application/x-yaml"}
    )
    if response.status_code == 409:  # already there: update it
        flow_id = source.split("\n", 1)[0].split(":", 1)[1].strip()
        response = await client.put(
            f"/api/v1/flows/{NAMESPACE}/{flow_id}",
            content=source,
            headers={"content-type": "application/x-yaml"},
        )
    response.raise_for_status()


async def _create(
    client: httpx.AsyncClient, flow_id: str, label: str, inputs: dict[str, str] | None
) -> dict[str, Any]:
    files = {k: (None, v) for k, v in (inputs or {}).items()} or None
    response = await client.post(
        f"/api/v1/executions/{NAMESPACE}/{flow_id}",
        params={"labels": f"bench:{label}"},
        files=files,
        data=None if files else {},
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def _count_terminal(client: httpx.AsyncClient, label: str) -> int:
    response = await client.get(
        "/api/v1/executions/search",
        params={"labels": f"bench:{label}", "state": list(TERMINAL), "size": 1},
    )
    response.raise_for_status()
    return int(response.json()["total"])


async def _fetch_all(client: httpx.AsyncClient, label: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await client.get(
            "/api/v1/executions/search",
            params={"labels": f"bench:{label}", "size": 1000, "page": page},
        )
        response.raise_for_status()
        results = response.json()["results"]
        found.extend(results)
        if len(results) < 1000:
            return found
        page += 1


async def open_loop(
    client: httpx.AsyncClient,
    flow_id: str,
    per_minute: int,
    seconds: float,
    label: str,
    *,
    drain_seconds: float,
    progress: Progress,
    concurrency: int = 64,
) -> RateResult:
    """Creates executions at ``per_minute`` for ``seconds`` whatever the server does, then waits
    up to ``drain_seconds`` for them to end and measures them."""
    result = RateResult(per_minute, seconds)
    interval = 60.0 / per_minute
    total = int(seconds * per_minute / 60)
    pending: set[asyncio.Task[Any]] = set()
    limit = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one() -> None:
        try:
            # at most `concurrency` requests in httpx: a deeper pool queue costs the client
            # CPU quadratically (httpcore scans its waiters), which starves the server it loads
            async with limit:
                await _create(client, flow_id, label, {"name": "bench"})
            result.created += 1
        except (httpx.HTTPError, ValueError) as exc:
            result.create_errors += 1
            if len(errors) < 3:
                errors.append(f"{type(exc).__name__}: {exc}")

    start = time.monotonic()
    next_report = start + 5
    for i in range(total):
        due = start + i * interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        if time.monotonic() >= next_report:
            next_report += 5
            progress(
                f"  {per_minute}/min: {i + 1}/{total} sent, {result.created} created, "
                f"{len(pending)} in flight, {result.create_errors} errors"
            )
    result.creator_lag_ms = max(0.0, time.monotonic() - (start + (total - 1) * interval)) * 1000
    if pending:
        await asyncio.wait(pending)
    progress(
        f"  {per_minute}/min: {result.created} created in {time.monotonic() - start:.1f}s "
        f"(window {seconds:g}s; last send {result.creator_lag_ms:.0f} ms late)"
    )
    for error in errors:
        progress(f"  creation error: {error}")

    deadline = time.monotonic() + drain_seconds
    done = 0
    while time.monotonic() < deadline:
        done = await _count_terminal(client, label)
        if done >= result.created:
            break
        await asyncio.sleep(0.5)
    progress(f"  {per_minute}/min: {done}/{result.created} terminal; measuring")

    executions = await _fetch_all(client, label)
    latencies: list[float] = []
    first_created: datetime | None = None
    last_end: datetime | None = None
    for execution in executions:
        state = execution["state"]
        created, ended = _date(state.get("startDate")), _date(state.get("endDate"))
        if created is not None:
            first_created = min(first_created or created, created)
        if state["current"] not in TERMINAL or ended is None or created is None:
            result.unfinished += 1
            continue
        result.terminal += 1
        if state["current"] != "SUCCESS":
            result.failed += 1
        latencies.append((ended - created).total_seconds() * 1000)
        last_end = max(last_end or ended, ended)
    result.unfinished += max(0, result.created - len(executions))
    if latencies and first_created is not None and last_end is not None:
        span = max((last_end - first_created).total_seconds(), 1e-3)
        result.achieved_per_min = result.terminal / span * 60
        result.p50_ms = percentile(latencies, 0.50)
        result.p99_ms = percentile(latencies, 0.99)
        result.max_ms = max(latencies)
    return result


async def sequential_runs(
    client: httpx.AsyncClient,
    flow_id: str,
    tasks: int,
    runs: int,
    *,
    timeout: float,
    progress: Progress,
) -> SequentialResult:
    """Runs ``flow_id`` ``runs`` times, one after the other; each run's execution start -> end."""
    result = SequentialResult(tasks)
    for run in range(runs):
        created = await _create(client, flow_id, f"seq-{run}", None)
        deadline = time.monotonic() + timeout
        execution = created
        while execution["state"]["current"] not in TERMINAL and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            response = await client.get(f"/api/v1/executions/{created['id']}")
            if response.status_code == 200:
                execution = response.json()
        state = execution["state"]
        result.states.append(state["current"])
        started, ended = _date(state.get("startDate")), _date(state.get("endDate"))
        if state["current"] in TERMINAL and started is not None and ended is not None:
            result.runs.append((ended - started).total_seconds())
            progress(
                f"  {tasks} sequential tasks, run {run + 1}/{runs}: {state['current']} in "
                f"{result.runs[-1]:.3f}s"
            )
        else:
            progress(f"  {tasks} sequential tasks, run {run + 1}/{runs}: did not finish")
    return result
