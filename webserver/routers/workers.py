"""Workers (their last heartbeat) and execution statistics for charts."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query

from common.repository.base import Durations, ExecutionQuery, Interval
from webserver.deps import BackendsDep, TenantDep

router = APIRouter(tags=["workers", "stats"])


@router.get("/workers", summary="Workers and their last heartbeat")
async def workers(backends: BackendsDep) -> list[dict[str, Any]]:
    found = await anyio.to_thread.run_sync(backends.repositories.workers.all)
    return [w.to_dict() for w in found]


def _utc(value: datetime) -> datetime:
    """Days are UTC days, as the repository's buckets; a date without offset is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/stats/executions/daily", summary="Executions per day and state")
async def daily_statistics(
    backends: BackendsDep,
    tenant: TenantDep,
    namespace: str | None = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    start_date: Annotated[datetime | None, Query(alias="startDate")] = None,
    end_date: Annotated[datetime | None, Query(alias="endDate")] = None,
) -> list[dict[str, Any]]:
    """Kestra's ``DailyExecutionStatistics``: one entry per day, counts by state, durations
    (seconds, of the executions that ended), from the repository's day histogram."""
    end = _utc(end_date) if end_date is not None else datetime.now(UTC)
    start = _utc(start_date) if start_date is not None else end - timedelta(days=30)
    query = ExecutionQuery(
        tenant_id=tenant, namespace=namespace, flow_id=flow_id, start_date=start, end_date=end
    )

    def compute() -> list[dict[str, Any]]:
        buckets = backends.repositories.executions.histogram(query, Interval.DAY)
        counts: dict[date, dict[str, int]] = defaultdict(dict)
        durations: dict[date, Durations] = defaultdict(Durations)
        for bucket in buckets:
            day = bucket.start.date()
            counts[day][bucket.state.value] = bucket.count
            durations[day] = durations[day].merge(bucket.durations)
        days = []
        day = start.date()
        while day <= end.date():
            spent = durations.get(day, Durations())
            days.append(
                {
                    "startDate": day.isoformat(),
                    "executionCounts": counts.get(day, {}),
                    "duration": {
                        "count": spent.count,
                        "sum": spent.sum,
                        "avg": spent.sum / spent.count if spent.count else 0.0,
                        "min": spent.min,
                        "max": spent.max,
                    },
                }
            )
            day += timedelta(days=1)
        return days

    return await anyio.to_thread.run_sync(compute)
