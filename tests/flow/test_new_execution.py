"""new_execution and replay: the pure constructors the API and the scheduler share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.errors import NotFoundError
from common.executions import new_execution
from common.models.execution import ExecutionTrigger, Label, StateEntry, StateInfo, TaskRun
from common.models.flow import Flow
from common.models.state import State
from common.replay import replay

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


def flow() -> Flow:
    return Flow.model_construct(
        id="hello", namespace="company.team", revision=3, tenant_id=None, labels={"team": "data"}
    )


def test_new_execution() -> None:
    trigger = ExecutionTrigger(id="hook", type="lanner.core.trigger.Webhook")
    execution = new_execution(
        flow(),
        {"a": 1},
        {"team": "ops", "env": "dev"},
        execution_id="ex1",
        now=NOW,
        trigger=trigger,
        schedule_date=NOW,
        tenant_id="acme",
    )
    assert execution.state.current == State.CREATED and execution.state.start_date == NOW
    assert execution.label_map() == {"team": "ops", "env": "dev", "system.correlationId": "ex1"}
    assert execution.flow_revision == 3 and execution.tenant_id == "acme"
    assert execution.inputs == {"a": 1} and execution.trigger == trigger
    given = new_execution(
        flow(),
        None,
        [Label(key="system.correlationId", value="parent")],
        execution_id="ex2",
        now=NOW,
    )
    assert given.label_map()["system.correlationId"] == "parent" and given.inputs == {}


def test_replay_keeps_task_runs_before_and_resets_parents() -> None:
    done = StateInfo(current=State.SUCCESS, histories=[StateEntry(state=State.SUCCESS, date=NOW)])
    base = new_execution(flow(), {}, None, execution_id="old", now=NOW)

    def tr(task_run_id: str, parent: str | None = None) -> TaskRun:
        return TaskRun(
            id=task_run_id,
            execution_id="old",
            namespace="company.team",
            flow_id="hello",
            task_id=task_run_id,
            parent_task_run_id=parent,
            state=done.model_copy(deep=True),
            outputs={"x": 1},
        )

    base.task_run_list = [tr("first"), tr("group"), tr("child1", "group"), tr("child2", "group")]
    base.state.current = State.FAILED
    replayed = replay(base, flow(), "child2", "new", NOW)
    assert replayed.id == "new" and replayed.parent_id == "old" and replayed.original_id == "old"
    assert [t.id for t in replayed.task_run_list] == ["first", "group", "child1"]
    assert {t.execution_id for t in replayed.task_run_list} == {"new"}
    group = replayed.task_run("group")
    assert group.state.current == State.RUNNING and group.outputs is None
    assert replayed.state.current == State.RESTARTED
    assert replayed.metadata.attempt_number == 2
    assert base.task_run_list[1].state.current == State.SUCCESS  # the original is untouched

    from_scratch = replay(base, flow(), None, "again", NOW)
    assert from_scratch.task_run_list == [] and from_scratch.state.current == State.CREATED
    with pytest.raises(NotFoundError):
        replay(base, flow(), "nope", "x", NOW)
