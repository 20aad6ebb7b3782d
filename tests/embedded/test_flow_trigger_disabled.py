"""A Flow trigger disabled through the API (a ``TriggerRequest`` the scheduler stores as the
trigger's state on ``triggers``) does not fire; enabled again, it fires. The executor reads the
states (``common.trigger_states``), as Kestra's executor skips a disabled trigger's
``Trigger.disabled`` (``io.kestra.core.runners.FlowTriggerService``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.executions import new_execution
from common.flow import parse_flow
from common.models.messages import NewExecution
from common.queue import base as topics
from common.trigger_requests import new_request, send_request
from tests.embedded.test_polling_triggers import Stack
from tests.infra.waiting import wait_until

NS = "lanner.flowtrig"
UPSTREAM = f"""\
id: upstream
namespace: {NS}
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: up
"""
DOWNSTREAM = f"""\
id: downstream
namespace: {NS}
tasks:
  - id: ret
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.executionId }}}}"
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: {NS}
        flowId: upstream
"""
UID = f"main/{NS}/downstream/after"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    built = Stack(tmp_path)
    built.start()
    built.deploy(UPSTREAM)
    built.deploy(DOWNSTREAM)
    yield built
    built.stop()


def run_upstream(stack: Stack, execution_id: str) -> None:
    execution = new_execution(
        parse_flow(UPSTREAM), {}, {}, execution_id=execution_id, now=datetime.now(UTC)
    )
    new = NewExecution(id=f"new:{execution_id}", execution_id=execution_id, execution=execution)
    stack.queue.emit(topics.EXECUTOR, execution_id, new.to_json())
    wait_until(
        lambda: any(
            e["id"] == execution_id and e["state"]["current"] == "SUCCESS"
            for e in stack.executions("upstream")
        ),
        30,
        f"upstream {execution_id} to end",
    )


def toggle(stack: Stack, disabled: bool) -> None:
    request = new_request(
        NS and "main", NS, "downstream", "after", datetime.now(UTC), disabled=disabled
    )
    send_request(stack.queue, request)
    wait_until(
        lambda: (s := stack.scheduler.states().get(UID)) is not None and s.disabled is disabled,
        30,
        "the scheduler to store the change",
    )


def triggered_by(stack: Stack) -> list[str]:
    return [e["trigger"]["variables"]["executionId"] for e in stack.executions("downstream")]


def test_a_flow_trigger_disabled_through_the_api_does_not_fire(stack: Stack) -> None:
    run_upstream(stack, "up1")
    wait_until(lambda: triggered_by(stack) == ["up1"], 30, "the trigger to fire for up1")
    toggle(stack, True)
    run_upstream(stack, "up2")
    toggle(stack, False)
    run_upstream(stack, "up3")
    wait_until(lambda: "up3" in triggered_by(stack), 30, "the trigger to fire again for up3")
    # up2 ended while disabled: its notice was evaluated (and refused) before up3's
    assert triggered_by(stack) == ["up1", "up3"]
