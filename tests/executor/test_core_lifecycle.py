"""Execution lifecycle: concurrency, flow outputs, kill, restart, idempotence, determinism,
template errors, Labels, dead workers."""

from __future__ import annotations

from datetime import timedelta

from common.models.messages import KillOrder, TaskResult, WorkerDied
from common.models.state import State

from .core_util import flow_yaml, history, one, run, states
from .harness import START, Sim

SLOW = """
concurrency:
  limit: 1
  behavior: {behavior}
tasks:
  - id: t
    type: io.kestra.plugin.core.log.Log
    message: m
"""


def _two_executions(behavior: str) -> tuple[Sim, str, str]:
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(SLOW.format(behavior=behavior)))
    first = sim.create("ns", "f")
    sim.run()
    second = sim.create("ns", "f")
    sim.run()
    return sim, first, second


def test_concurrency_queue() -> None:
    sim, first, second = _two_executions("QUEUE")
    assert sim.execution(first).state.current == State.RUNNING
    assert sim.execution(second).state.current == State.QUEUED
    sim.hold_workers = False
    sim.run()
    assert sim.execution(first).state.current == State.SUCCESS
    assert sim.execution(second).state.current == State.SUCCESS
    assert State.QUEUED in history(sim.execution(second))


def test_concurrency_never_runs_more_than_the_limit() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(SLOW.replace("limit: 1", "limit: 2").format(behavior="QUEUE")))
    created = [sim.create("ns", "f") for _ in range(6)]
    peak = 0

    def running() -> bool:
        nonlocal peak
        active = (State.RUNNING, State.PAUSED, State.KILLING)
        now = sum(1 for s in sim.states.values() if s.execution.state.current in active)
        peak = max(peak, now)
        # more creations arrive while the first ones end
        if sim.steps >= 20 and len(created) == 6:
            created.extend(sim.create("ns", "f") for _ in range(6))
        return False

    sim.run(until=running)
    assert peak == 2
    assert [sim.execution(e).state.current for e in created] == [State.SUCCESS] * 12


def test_concurrency_cancel() -> None:
    sim, first, second = _two_executions("CANCEL")
    assert sim.execution(second).state.current == State.CANCELLED
    assert sim.execution(second).task_run_list == []


def test_concurrency_fail() -> None:
    sim, first, second = _two_executions("FAIL")
    assert sim.execution(second).state.current == State.FAILED
    sim.hold_workers = False
    sim.run()
    assert sim.execution(first).state.current == State.SUCCESS


def test_flow_outputs_are_typed() -> None:
    _, ex = run(
        """
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: "7"
        outputs:
          - id: n
            type: INT
            value: "{{ outputs.r.value }}"
          - id: s
            type: STRING
            value: "{{ outputs.r.value }}"
          - id: b
            type: BOOLEAN
            value: "true"
        """
    )
    assert ex.state.current == State.SUCCESS
    assert ex.outputs == {"n": 7, "s": "7", "b": True}


def test_flow_output_render_error_fails_with_null_outputs() -> None:
    s, ex = run(
        """
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: "x"
        outputs:
          - id: bad
            type: STRING
            value: "{{ nope.nope }}"
        """
    )
    assert ex.state.current == State.FAILED
    assert ex.outputs is None
    assert states(ex) == {"r": State.SUCCESS}
    assert any(log.level == "ERROR" for log in s.logs)


def test_flow_output_of_wrong_type_fails() -> None:
    _, ex = run(
        """
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: "abc"
        outputs:
          - id: n
            type: INT
            value: "{{ outputs.r.value }}"
        """
    )
    assert ex.state.current == State.FAILED
    assert ex.outputs is None


KILL = """
tasks:
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 1
    tasks:
      - id: a
        type: io.kestra.plugin.core.log.Log
        message: a
      - id: b
        type: io.kestra.plugin.core.log.Log
        message: b
  - id: c
    type: io.kestra.plugin.core.log.Log
    message: c
"""


def test_kill_waits_for_workers_then_ends_killed() -> None:
    from executor.core import step

    sim = Sim(hold_workers=True)
    flow = sim.deploy(flow_yaml(KILL))
    eid = sim.create("ns", "f")
    sim.run()
    running = sim.worker_queue.popleft()
    # the worker reports RUNNING, then a kill arrives
    sim.inbox.append(sim._work(running)[0])
    sim.run()
    from common.models.messages import Kill

    result = step(flow, sim.states[eid], Kill(id="k1", execution_id=eid), START)
    # the kill is ordered after the task it stops: its sequence is not below the task's
    sequence = sim.states[eid].execution.sequence
    assert result.kill_orders == [KillOrder(execution_id=eid, sequence=sequence)]
    assert running.sequence <= sequence
    ex = result.state.execution  # type: ignore[union-attr]
    assert ex.state.current == State.KILLING
    assert one(ex, "a").state.current == State.RUNNING
    sim.states[eid] = result.state  # type: ignore[assignment]
    # the worker reports KILLED
    killed = sim._work(running)[0]
    killed.result.state = State.KILLED
    killed.id = "result-killed"
    sim.inbox.append(killed)
    sim.run()
    ex = sim.execution(eid)
    assert ex.state.current == State.KILLED
    assert states(ex) == {"par": State.KILLED, "a": State.KILLED}
    assert all(tr.state.current.terminal for tr in ex.task_run_list)


def test_kill_makes_created_task_runs_killed() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(KILL))
    eid = sim.create("ns", "f")
    sim.run()
    # `a` is submitted but the worker never picked it: its attempt is CREATED
    sim.worker_queue.clear()
    sim.kill(eid)
    sim.run()
    ex = sim.execution(eid)
    assert ex.state.current in (State.KILLING, State.KILLED)
    # the worker, told to kill, reports it
    tr = one(ex, "a")
    if not tr.state.current.terminal:
        from common.models.messages import WorkerTaskResult

        res = WorkerTaskResult(
            execution_id=eid,
            task_run_id=tr.id,
            attempt=1,
            state=State.KILLED,
            date=START,
        )
        sim.send(TaskResult(id=res.input_id, execution_id=eid, result=res))
        sim.run()
    ex = sim.execution(eid)
    assert ex.state.current == State.KILLED
    assert all(tr.state.current == State.KILLED for tr in ex.task_run_list)
    assert [tr.task_id for tr in ex.task_run_list] == ["par", "a"]


def test_restart_reruns_failed_task_as_new_attempt() -> None:
    calls: dict[str, int] = {}

    def outcome(wt):  # type: ignore[no-untyped-def]
        calls[wt.task_run.task_id] = calls.get(wt.task_run.task_id, 0) + 1
        if wt.task_run.task_id == "b" and calls["b"] == 1:
            return (State.FAILED, None, "first time")
        return (State.SUCCESS, {}, None)

    sim, ex = run(
        """
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: a
          - id: b
            type: io.kestra.plugin.core.log.Log
            message: b
          - id: c
            type: io.kestra.plugin.core.log.Log
            message: c
        """,
        outcome=outcome,
    )
    assert ex.state.current == State.FAILED
    b_id = one(ex, "b").id
    sim.restart(ex.id)
    sim.run()
    ex = sim.execution(ex.id)
    assert ex.state.current == State.SUCCESS
    assert State.RESTARTED in history(ex)
    b = one(ex, "b")
    assert b.id == b_id
    assert [a.state.current for a in b.attempts] == [State.FAILED, State.SUCCESS]
    assert len(one(ex, "a").attempts) == 1
    assert calls == {"a": 1, "b": 2, "c": 1}
    assert list(sim.states) == [ex.id]


def test_same_input_twice_is_applied_once() -> None:
    from executor.core import step

    sim = Sim(hold_workers=True)
    flow = sim.deploy(flow_yaml(KILL))
    eid = sim.create("ns", "f")
    sim.run()
    wt = sim.worker_queue.popleft()
    running, done = sim._work(wt)
    state = sim.states[eid]
    for event in (running, done):
        first = step(flow, state, event, START)
        assert first.state is not None
        again = step(flow, first.state, event, START)
        assert again.state is first.state
        assert not again.changed
        assert again.worker_tasks == [] and again.executor_inputs == []
        state = first.state
    assert state.execution.sequence == sim.states[eid].execution.sequence + 2


def test_new_execution_twice_changes_nothing() -> None:
    from executor.core import step

    sim = Sim()
    flow = sim.deploy(flow_yaml(KILL))
    sim.create("ns", "f")
    event = sim.inbox.popleft()
    first = step(flow, None, event, START)
    again = step(flow, first.state, event, START)
    assert again.state is first.state
    assert again.worker_tasks == []


def test_determinism() -> None:
    body = """
    tasks:
      - id: each
        type: io.kestra.plugin.core.flow.ForEach
        values: [1, 2, 3]
        concurrencyLimit: 2
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: "{{ taskrun.value }}"
            retry:
              type: random
              minInterval: PT1S
              maxInterval: PT9S
              maxAttempt: 2
    """

    def outcome(wt):  # type: ignore[no-untyped-def]
        bad = wt.task_run.value == "2" and wt.attempt == 1
        return (State.FAILED, None, "x") if bad else (State.SUCCESS, {"v": 1}, None)

    dumps = []
    for _ in range(2):
        sim, ex = run(body, outcome=outcome)
        dumps.append(ex.model_dump_json())
        assert ex.state.current == State.SUCCESS
    assert dumps[0] == dumps[1]


def test_template_error_in_a_runnable_task_is_a_failed_task_run() -> None:
    s, ex = run(
        """
        tasks:
          - id: r
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.nothing.here }}"
        """
    )
    assert states(ex) == {"r": State.FAILED}
    assert ex.state.current == State.FAILED
    assert any(log.level == "ERROR" and log.task_id == "r" for log in s.logs)


def test_template_error_in_flowable_values_is_a_failed_task_run() -> None:
    s, ex = run(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: "{{ inputs.nope | fromJson }}"
            tasks:
              - id: r
                type: io.kestra.plugin.core.log.Log
                message: m
        """
    )
    assert states(ex) == {"each": State.FAILED}
    assert any(log.level == "ERROR" and log.task_id == "each" for log in s.logs)


def test_template_error_in_subflow_inputs_is_a_failed_task_run() -> None:
    s, ex = run(
        """
        tasks:
          - id: sub
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: "{{ nope.nope }}"
        """
    )
    assert states(ex) == {"sub": State.FAILED}
    assert any(log.level == "ERROR" and log.task_id == "sub" for log in s.logs)


def test_labels_task() -> None:
    _, ex = run(
        """
        labels:
          keep: "1"
          change: old
        tasks:
          - id: l
            type: io.kestra.plugin.core.execution.Labels
            labels:
              change: new
              added: "{{ 1 + 1 }}"
          - id: read
            type: io.kestra.plugin.core.debug.Return
            format: "{{ labels.added }}"
        """
    )
    assert ex.state.current == State.SUCCESS
    assert {k: v for k, v in ex.label_map().items() if not k.startswith("system.")} == {
        "keep": "1",
        "change": "new",
        "added": "2",
    }
    assert one(ex, "read").outputs == {"value": "2"}


def test_labels_task_cannot_set_system_labels() -> None:
    _, ex = run(
        """
        tasks:
          - id: l
            type: io.kestra.plugin.core.execution.Labels
            labels:
              system.correlationId: x
        """
    )
    assert states(ex) == {"l": State.FAILED}


def test_worker_died_resubmits_as_a_new_attempt() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(
        flow_yaml("tasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: m\n")
    )
    eid = sim.create("ns", "f")
    sim.run()
    wt = sim.worker_queue.popleft()
    sim.inbox.append(sim.take(wt))  # RUNNING on worker "sim"
    sim.run()
    sim.silence(timedelta(seconds=30))  # liveness hands the job back: a WorkerDied input
    assert [type(e) for e in sim.inbox] == [WorkerDied]
    sim.run()
    assert len(sim.worker_queue) == 1
    assert sim.worker_queue[0].attempt == 2
    # a late result of the lost attempt changes nothing
    late = sim._work(wt)[1]
    sim.send(late)
    sim.run()
    assert one(sim.execution(eid), "t").state.current == State.CREATED
    sim.hold_workers = False
    sim.run()
    ex = sim.execution(eid)
    assert ex.state.current == State.SUCCESS
    t = one(ex, "t")
    assert [a.state.current for a in t.attempts] == [State.FAILED, State.SUCCESS]
    # the dead worker's attempt does not count as a retry
    assert t.state.current == State.SUCCESS


def test_an_order_naming_another_tenant_changes_nothing() -> None:
    """Kill / Restart / Resume sent unchecked while the repository is down carry the tenant the
    webserver authorized (issue 13): the executor applies them only to an execution of that
    tenant, so a credential of tenant ``acme`` cannot kill ``main``'s execution by its id."""
    from common.models.messages import Kill, Restart, Resume
    from executor.core import step

    sim = Sim(hold_workers=True)
    flow = sim.deploy(flow_yaml(KILL))
    eid = sim.create("ns", "f")  # an execution of the default tenant, main
    sim.run()
    before = sim.states[eid].execution.model_copy(deep=True)
    for order in (
        Kill(id="k-acme", execution_id=eid, tenant_id="acme"),
        Resume(id="r-acme", execution_id=eid, tenant_id="acme"),
        Restart(id="rs-acme", execution_id=eid, tenant_id="acme"),
    ):
        result = step(flow, sim.states[eid], order, START)
        assert result.state is not None and result.kill_orders == []
        assert result.state.execution == before
        assert order.id not in result.state.applied
    result = step(
        flow, sim.states[eid], Kill(id="k-main", execution_id=eid, tenant_id="main"), START
    )
    assert result.state is not None
    assert result.state.execution.state.current == State.KILLING
