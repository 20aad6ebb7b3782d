"""Kestra's task retries as pure functions: which policy governs a failed task run, and when
its next attempt is due.

A failed task run follows its task's own ``retry``, else that of the nearest enclosing task that
has one (a ``retry`` on a flowable task governs the tasks inside it), else the flow's. With
``RETRY_FAILED_TASK`` the task run gets a new attempt; with ``CREATE_NEW_EXECUTION`` the execution
ends RETRIED and a new one starts. Either way ``maxAttempt`` counts attempts (of the task run, or
executions of the chain) and ``maxDuration`` is measured from the first of them, so the limits
hold across every execution a chain creates.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from common.plugins.base import Retry, Task, parse_duration


def policy_for(task: Task, ancestors: Sequence[Task], flow_retry: Retry | None) -> Retry | None:
    """The policy of a task run of ``task``; ``ancestors`` are its enclosing tasks, outermost
    first."""
    if task.retry is not None:
        return task.retry
    for parent in reversed(ancestors):
        if parent.retry is not None:
            return parent.retry
    return flow_retry


def delay(policy: Retry, attempts: int, seed: str) -> timedelta:
    """The wait before the attempt after ``attempts`` attempts.

    ``random`` draws from a generator seeded with ``seed``: the same input replayed must give the
    same delay.
    """
    if policy.type == "constant":
        return parse_duration(policy.interval) or timedelta()
    if policy.type == "exponential":
        base = parse_duration(policy.interval) or timedelta(seconds=1)
        factor = policy.delay_factor or 2.0
        wait = base * (factor ** (attempts - 1))
        cap = parse_duration(policy.max_interval)
        return min(wait, cap) if cap is not None else wait
    low = parse_duration(policy.min_interval) or timedelta()
    high = parse_duration(policy.max_interval) or low
    return low + (high - low) * random.Random(seed).random()


def next_attempt_at(
    policy: Retry, attempts: int, now: datetime, first_attempt: datetime, seed: str
) -> datetime | None:
    """When the next attempt is due after ``attempts`` failed ones, or None once ``maxAttempt``
    is reached or the attempt would start more than ``maxDuration`` after ``first_attempt``."""
    if policy.max_attempt is not None and attempts >= policy.max_attempt:
        return None
    due = now + delay(policy, attempts, seed)
    max_duration = parse_duration(policy.max_duration)
    if max_duration is not None and due - first_attempt > max_duration:
        return None
    return due
