"""Workers (their last heartbeat) and execution statistics for charts."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query

from common.repository.base import ExecutionQuery
from webserver.deps import BackendsDep, TenantDep

router = APIRouter(tags=["workers", "stats"])

STATS_PAGE = 500
STATS_MAX_EXECUTIONS = 50_000


@router.get("/workers", summary="Workers and their last heartbeat")
async def workers(backends: BackendsDep) -> list[dict[str, Any]]:
    found = await anyio.to_thread.run_sync(backends.repositories.workers.all)
    return [w.to_dict() for w in found]


@router.get("/stats/executions/daily", summary="Executions per day and state")
async def daily_statistics(
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    start_date: Annotated[datetime | None, Query(alias="startDate")] = None,
    end_date: Annotated[datetime | None, Query(alias="endDate")] = None,
) -> list[dict[str, Any]]:
    """Kestra's ``DailyExecutionStatistics``: one entry per day, counts by state, durations."""
    end = end_date or datetime.now(UTC)
    start = start_date or (end - timedelta(days=30))

    def compute() -> list[dict[str, Any]]:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        durations: dict[str, list[float]] = defaultdict(list)
        page = 1
        while (page - 1) * STATS_PAGE < STATS_MAX_EXECUTIONS:
            found = backends.repositories.executions.search(
                ExecutionQuery(
                    tenant_id=tenant,
                    namespace=namespace,
                    flow_id=flow_id,
                    start_date=start,
                    end_date=end,
                    page=page,
                    size=STATS_PAGE,
                )
            )
            for execution in found.results:
                started = execution.state.start_date
                if started is None:
                    continue
                day = started.date().isoformat()
                counts[day][execution.state.current.value] += 1
                ended = execution.state.end_date
                if ended is not None:
                    durations[day].append((ended - started).total_seconds())
            if page * STATS_PAGE >= found.total or not found.results:
                break
            page += 1
        days = []
        day = start.date()
        while day <= end.date():
            key = day.isoformat()
            values = durations.get(key, [])
            days.append(
                {
                    "startDate": key,
                    "executionCounts": dict(counts.get(key, {})),
                    "duration": {
                        "count": len(values),
                        "sum": sum(values),
                        "avg": sum(values) / len(values) if values else 0.0,
                        "min": min(values) if values else 0.0,
                        "max": max(values) if values else 0.0,
                    },
                }
            )
            day += timedelta(days=1)
        return days

    return await anyio.to_thread.run_sync(compute)
