"""executor.concurrency on its own: whatever the order of creations and ends, no more than the
limit hold a slot, executions start in the order they were created (a freed slot goes to the
oldest waiting one, not to a newcomer), and each Dequeue names a distinct execution."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from common.models.execution import Execution
from common.models.flow import Concurrency
from common.models.state import State
from executor import concurrency

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _execution(execution_id: str, state: State) -> Execution:
    execution = Execution(id=execution_id, namespace="ns", flow_id="f")
    execution.set_state(state, NOW)
    return execution


@given(
    limit=st.integers(min_value=1, max_value=3),
    actions=st.lists(st.sampled_from(["create", "end", "dequeue"]), max_size=60),
)
# an end and a creation before the Dequeue is applied (one batch of the embedded executor)
@example(limit=1, actions=["create", "create", "end", "create"])
# two ends before the Dequeues are applied
@example(limit=2, actions=["create"] * 4 + ["end", "end", "create"])
def test_slots_never_exceed_the_limit_and_are_given_in_creation_order(
    limit: int, actions: list[str]
) -> None:
    rule = Concurrency(limit=limit, behavior="QUEUE")
    slots = concurrency.FlowSlots()
    states: dict[str, State] = {}
    pending: list[str] = []  # Dequeue inputs not applied yet
    dequeued: list[str] = []
    # the order slots are given: a Dequeue reserves its slot when it is emitted, so a creation
    # that arrives before the Dequeue is applied may start first, but never takes that slot
    granted: list[str] = []

    def observe(execution_id: str) -> None:
        execution = _execution(execution_id, states[execution_id])
        for dequeue in concurrency.observe_report(slots, rule, execution):
            pending.append(dequeue.execution_id)
            dequeued.append(dequeue.id)
            granted.append(dequeue.execution_id)

    def begin(execution_id: str) -> None:
        running = concurrency.running_count(slots, execution_id)
        states[execution_id] = concurrency.admit(rule, running)
        if states[execution_id] == State.RUNNING:
            if execution_id not in granted:
                granted.append(execution_id)
        observe(execution_id)

    for action in [*actions, *["dequeue", "end"] * 100]:
        if action == "create":
            execution_id = f"e{len(states)}"
            begin(execution_id)
        elif action == "dequeue" and pending:
            execution_id = pending.pop(0)
            if states[execution_id] == State.QUEUED:
                begin(execution_id)
        elif action == "end":
            running = [e for e, s in states.items() if s == State.RUNNING]
            if running:
                states[running[0]] = State.SUCCESS
                observe(running[0])
        assert sum(1 for s in states.values() if s == State.RUNNING) <= limit
        assert len(slots.running) <= limit
        assert len(set(slots.queued)) == len(slots.queued)
    assert all(s == State.SUCCESS for s in states.values())
    assert granted == sorted(states, key=lambda e: int(e[1:]))
    assert len(set(dequeued)) == len(dequeued)
    assert slots.running == [] and slots.queued == []


def test_admit_follows_the_behavior() -> None:
    assert concurrency.admit(None, 99) == State.RUNNING
    for behavior, state in (
        ("QUEUE", State.QUEUED),
        ("CANCEL", State.CANCELLED),
        ("FAIL", State.FAILED),
    ):
        rule = Concurrency(limit=2, behavior=behavior)  # type: ignore[arg-type]
        assert concurrency.admit(rule, 1) == State.RUNNING
        assert concurrency.admit(rule, 2) == state


@given(
    limit=st.integers(min_value=1, max_value=3),
    data=st.data(),
)
def test_a_slot_keeper_that_hears_of_states_late_never_exceeds_the_limit(
    limit: int, data: st.DataObject
) -> None:
    """The Kafka flow agent keeps the slots: it hears of each execution's state from notices
    that one partition delivers in the order they were sent, while its answers (Dequeue) reach
    each execution whenever that execution's partition gets to them. However late the notices
    and the answers are, no more than ``limit`` executions run at once and all of them end."""
    rule = Concurrency(limit=limit, behavior="QUEUE")
    slots = concurrency.FlowSlots()
    states: dict[str, State] = {}
    awaiting: set[str] = set()  # created, waiting for the keeper's first answer
    notices: list[tuple[str, str, State]] = []  # to the keeper: (kind, execution, state)
    answers: dict[str, list[int]] = {}  # per execution: running counts of its Dequeues

    def report(execution_id: str, state: State) -> None:
        states[execution_id] = state
        notices.append(("state", execution_id, state))

    def keeper() -> None:
        kind, execution_id, state = notices.pop(0)
        if kind == "admit":
            answer = concurrency.request_admission(slots, rule, execution_id)
            answers[execution_id].append(answer.running_count or 0)
        execution = _execution(execution_id, state)
        for dequeue in concurrency.observe_report(slots, rule, execution):
            answers[dequeue.execution_id].append(dequeue.running_count or 0)

    def deliver(execution_id: str) -> None:
        running = answers[execution_id].pop(0)
        waiting = states[execution_id] == State.QUEUED or execution_id in awaiting
        if waiting:
            awaiting.discard(execution_id)
            admitted = concurrency.admit(rule, running)
            if admitted != states[execution_id]:
                report(execution_id, admitted)

    def step(action: str) -> bool:
        if action == "create":
            execution_id = f"e{len(states)}"
            answers[execution_id] = []
            awaiting.add(execution_id)
            report(execution_id, State.CREATED)
            notices.append(("admit", execution_id, State.CREATED))
        elif action == "keeper" and notices:
            keeper()
        elif action == "deliver":
            ready = sorted(e for e, pending in answers.items() if pending)
            if not ready:
                return False
            deliver(data.draw(st.sampled_from(ready), label="deliver to"))
        elif action == "end":
            running = sorted(e for e, s in states.items() if s == State.RUNNING)
            if not running:
                return False
            report(data.draw(st.sampled_from(running), label="ends"), State.SUCCESS)
        else:
            return False
        return True

    creations = data.draw(st.integers(min_value=1, max_value=6), label="creations")
    for _ in range(creations):
        step("create")
    for _ in range(data.draw(st.integers(min_value=0, max_value=80), label="steps")):
        step(data.draw(st.sampled_from(["create", "keeper", "deliver", "end"])))
        assert sum(1 for s in states.values() if s == State.RUNNING) <= limit
    # then everything is delivered, in an order still chosen by the test
    while step("keeper") or step("deliver") or step("end"):
        assert sum(1 for s in states.values() if s == State.RUNNING) <= limit
    assert all(s == State.SUCCESS for s in states.values()), states
    assert slots.running == [] and slots.queued == []
