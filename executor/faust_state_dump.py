"""What a Faust executor that stopped working waits on, written to its log on SIGUSR1.

mode's own dump (also on SIGUSR1) prints each task's stack, but an ``async for`` over an async
generator awaits an ``async_generator_asend`` that does not expose the generator, so the fetch
loop's dump ends at ``[rest of traceback truncated]``. Here each await chain is followed down
to the future it waits on (``cr_await`` / ``ag_await``), the fetch loop's current batch
included, on Faust's loop and on the consumer thread's, with the consumer's flow and
rebalance flags.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import faust

log = logging.getLogger("lanner.executor")


def await_chain(awaitable: Any) -> list[str]:
    """Where each frame of a coroutine (or async generator) and what it awaits stand, outer
    first; the last line is the awaited object that is not a coroutine."""
    lines: list[str] = []
    current = awaitable
    for _ in range(64):  # a chain that long is a loop in the objects, not an await chain
        if current is None:
            break
        frame = (
            getattr(current, "cr_frame", None)
            or getattr(current, "ag_frame", None)
            or getattr(current, "gi_frame", None)
        )
        if frame is None:
            awaited = _awaited(current)
            if isinstance(awaited, asyncio.Task):  # a task awaiting another: follow it
                lines.append(f"awaits task {awaited.get_name()}")
                current = awaited.get_coro()
                continue
            lines.append(f"awaits {awaited!r:.300}")
            break
        code = frame.f_code
        lines.append(f"{code.co_filename}:{frame.f_lineno} {code.co_qualname}")
        current = (
            getattr(current, "cr_await", None)
            or getattr(current, "ag_await", None)
            or getattr(current, "gi_yieldfrom", None)
        )
    return lines


def _awaited(obj: Any) -> Any:
    # ``await future`` leaves a FutureIter that has no attribute naming its future: the
    # garbage collector's referents do
    if isinstance(obj, asyncio.Future):
        return obj
    for referent in gc.get_referents(obj):
        if isinstance(referent, asyncio.Future):
            return referent
    return obj


def _tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    for _ in range(5):  # the set can change under a reader on another thread
        try:
            return list(asyncio.all_tasks(loop))
        except RuntimeError:
            continue
    return []


def describe_tasks(loop: asyncio.AbstractEventLoop) -> list[str]:
    lines: list[str] = []
    for task in sorted(_tasks(loop), key=lambda t: t.get_name()):
        lines.append(f"  task {task.get_name()}:")
        lines.extend(f"    {line}" for line in await_chain(task.get_coro()))
    return lines


def _assigned(consumer: Any) -> str:
    try:
        return ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in consumer.assignment()))
    except Exception as exc:  # noqa: BLE001 - e.g. the consumer thread not started yet
        return f"unknown ({exc})"


def describe_executor(app: Any) -> str:
    """The consumer's flags, its fetch loop's current batch and every task of Faust's loop and
    of the consumer thread's loop."""
    lines = ["executor state (SIGUSR1):"]
    consumer = app.consumer
    flow_control = app.flow_control
    lines.append(
        f"  app: rebalancing={app.rebalancing} generation={app.consumer_generation_id} "
        f"flow_control.active={flow_control.is_active()}"
    )
    lines.append(
        f"  consumer: flow_active={consumer.flow_active} "
        f"can_resume_flow={consumer.can_resume_flow.is_set()} "
        f"suspend_flow={consumer.suspend_flow.is_set()} "
        f"not_waiting_next_records={consumer.not_waiting_next_records.is_set()} "
        f"commit_under_way={consumer._commit_fut is not None} "
        f"seeks={getattr(consumer, '_seeks', '?')} "
        f"assigned={_assigned(consumer)}"
    )
    batch = getattr(consumer, "current_batch", None)
    if batch is not None:
        lines.append("  fetch loop's batch:")
        lines.extend(f"    {line}" for line in await_chain(batch))
    lines.append("  Faust's loop:")
    lines.extend(describe_tasks(app.loop))
    thread = getattr(consumer, "_thread", None)
    thread_loop = getattr(thread, "thread_loop", None)
    if thread_loop is not None:
        lines.append("  consumer thread's loop:")
        lines.extend(describe_tasks(thread_loop))
    return "\n".join(lines)


def log_executor_state(app: Any) -> None:
    try:
        log.warning("%s", describe_executor(app))
    except Exception:  # noqa: BLE001 - a diagnostic never stops the executor
        log.exception("executor state dump failed")


class ExecutorWorker(faust.Worker):
    """The Faust worker that runs the executor: SIGUSR1 adds this dump to mode's own."""

    def _on_sigusr1(self) -> None:
        super()._on_sigusr1()  # mode's dump of every thread and task
        log_executor_state(self.app)
