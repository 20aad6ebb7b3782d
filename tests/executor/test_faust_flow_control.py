"""The executor's flow control: a resume empties the streams' queues only when it ends a
suspension (Faust's empties them at every resume, and a table recovery resumes up to three
times: inputs handed over between two resumes were dropped unprocessed)."""

from __future__ import annotations

import asyncio

from mode.utils.queues import FlowControlQueue

from executor.faust_transport import ResumeOnceFlowControl


def _queue_after(*steps: str) -> int:
    async def scenario() -> int:
        flow = ResumeOnceFlowControl()  # starts suspended, as Faust's does
        queue: FlowControlQueue[str] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        flow.resume()
        for step in steps:
            if step == "put":
                queue.put_nowait("input")
            elif step == "suspend":
                flow.suspend()
            elif step == "resume":
                flow.resume()
        return queue.qsize()

    return asyncio.run(scenario())


def test_a_resume_while_flowing_keeps_what_the_streams_hold() -> None:
    assert _queue_after("put", "resume", "put", "resume") == 2


def test_the_resume_that_ends_a_suspension_empties_the_queues() -> None:
    assert _queue_after("put", "suspend", "resume") == 0
    assert _queue_after("put", "suspend", "resume", "put", "resume") == 1
