"""The executor's state dump follows an await chain through an async generator down to the
future it waits on (mode's dump stops at the generator)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from executor.faust_state_dump import await_chain, describe_tasks


async def _records(waited: asyncio.Future[int], entered: asyncio.Event) -> AsyncIterator[int]:
    entered.set()  # nothing runs between this and the await below
    yield await waited


async def _fetch_loop(batch: AsyncIterator[int]) -> None:
    async for _ in batch:
        pass


def test_the_chain_of_a_loop_blocked_in_an_async_generator_ends_at_the_awaited_future() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        waited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        entered = asyncio.Event()
        batch = _records(waited, entered)
        task = asyncio.create_task(_fetch_loop(batch), name="fetch-loop")
        await entered.wait()  # the task now waits inside the generator
        of_batch = await_chain(batch)
        of_tasks = describe_tasks(asyncio.get_running_loop())
        waited.set_result(1)
        await task
        return of_batch, of_tasks

    of_batch, of_tasks = asyncio.run(scenario())
    assert "_records" in of_batch[0]
    assert of_batch[-1].startswith("awaits <Future pending")
    text = "\n".join(of_tasks)
    assert "task fetch-loop:" in text
    assert "_fetch_loop" in text
