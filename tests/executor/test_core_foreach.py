"""ForEach, EachSequential, EachParallel: children once per value."""

from __future__ import annotations

import json

from common.models.state import State

from .core_util import flow_yaml, non_terminal, run, runs, state_of
from .harness import Sim


def _foreach(values: str, limit: int | None = None, child: str | None = None) -> str:
    extra = f"    concurrencyLimit: {limit}\n" if limit is not None else ""
    child = child or (
        "      - id: r\n"
        "        type: io.kestra.plugin.core.debug.Return\n"
        '        format: "{{ taskrun.value }}"\n'
    )
    return (
        "tasks:\n  - id: each\n    type: io.kestra.plugin.core.flow.ForEach\n"
        f"    values: {values}\n{extra}    tasks:\n{child}"
    )


def _values(ex, task_id: str = "r") -> list[str | None]:  # type: ignore[no-untyped-def]
    return [tr.value for tr in runs(ex, task_id)]


def test_values_list() -> None:
    _, ex = run(_foreach('["a", "b", "c"]'))
    assert ex.state.current == State.SUCCESS
    assert _values(ex) == ["a", "b", "c"]
    assert [tr.outputs for tr in runs(ex, "r")] == [{"value": v} for v in "abc"]
    each = runs(ex, "each")[0]
    assert all(tr.parent_task_run_id == each.id for tr in runs(ex, "r"))


def test_values_json_string() -> None:
    _, ex = run(_foreach("'[1, 2, 3]'"))
    assert ex.state.current == State.SUCCESS
    assert _values(ex) == ["1", "2", "3"]


def test_values_template() -> None:
    body = "inputs:\n  - id: items\n    type: JSON\n" + _foreach('"{{ inputs.items }}"')
    _, ex = run(body, inputs={"items": ["x", "y"]})
    assert ex.state.current == State.SUCCESS
    assert _values(ex) == ["x", "y"]


def test_object_values_are_json_and_taskrun_value_is_the_json() -> None:
    _, ex = run(_foreach('[{"k": 1}, {"k": 2}]'))
    assert ex.state.current == State.SUCCESS
    assert _values(ex) == ['{"k":1}', '{"k":2}']
    assert json.loads(runs(ex, "r")[1].outputs["value"]) == {"k": 2}  # type: ignore[index]


def test_empty_values_succeeds_without_children() -> None:
    _, ex = run(_foreach("[]"))
    assert ex.state.current == State.SUCCESS
    assert [tr.task_id for tr in ex.task_run_list] == ["each"]


def test_values_not_a_list_fails() -> None:
    s, ex = run(_foreach('"not json"'))
    assert ex.state.current == State.FAILED
    assert state_of(ex, "each") == State.FAILED
    assert any(log.level == "ERROR" for log in s.logs)


def _peak(limit: int, n: int) -> tuple[int, State]:
    sim = Sim(hold_workers=True)
    values = json.dumps([f"v{i}" for i in range(n)])
    sim.deploy(flow_yaml(_foreach(f"'{values}'", limit)))
    eid = sim.create("ns", "f")
    sim.run()

    def active() -> int:
        return sum(1 for tr in non_terminal(sim.execution(eid)) if tr.task_id == "r")

    peak = active()
    while sim.worker_queue:
        sim.inbox.extend(sim._work(sim.worker_queue.popleft()))
        sim.run()
        peak = max(peak, active())
    return peak, sim.execution(eid).state.current


def test_concurrency_limit_1_runs_one_iteration_at_a_time() -> None:
    assert _peak(1, 4) == (1, State.SUCCESS)


def test_concurrency_limit_2() -> None:
    assert _peak(2, 5) == (2, State.SUCCESS)


def test_concurrency_limit_0_runs_everything_at_once() -> None:
    assert _peak(0, 5) == (5, State.SUCCESS)


def test_tasks_of_one_iteration_are_sequential() -> None:
    child = (
        "      - id: r\n        type: io.kestra.plugin.core.debug.Return\n"
        '        format: "{{ taskrun.value }}"\n'
        "      - id: r2\n        type: io.kestra.plugin.core.debug.Return\n"
        '        format: "{{ outputs.r[taskrun.value].value }}!"\n'
    )
    _, ex = run(_foreach('["a", "b"]', 0, child))
    assert ex.state.current == State.SUCCESS
    assert [tr.outputs for tr in runs(ex, "r2")] == [{"value": "a!"}, {"value": "b!"}]
    for tr in runs(ex, "r2"):
        r = next(x for x in runs(ex, "r") if x.value == tr.value)
        assert r.state.end_date is not None and tr.state.start_date is not None
        assert ex.task_run_list.index(r) < ex.task_run_list.index(tr)


def test_nested_foreach_and_parents() -> None:
    _, ex = run(
        """
        tasks:
          - id: outer
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b"]
            tasks:
              - id: inner
                type: io.kestra.plugin.core.flow.ForEach
                values: ["1", "2"]
                tasks:
                  - id: r
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ parents[0].taskrun.value }}-{{ taskrun.value }}"
          - id: read
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.r.b['2'].value }}"
        """
    )
    assert ex.state.current == State.SUCCESS
    assert sorted(tr.outputs["value"] for tr in runs(ex, "r")) == [  # type: ignore[index]
        "a-1",
        "a-2",
        "b-1",
        "b-2",
    ]
    assert runs(ex, "read")[0].outputs == {"value": "b-2"}
    # one inner ForEach task run per outer value
    assert sorted(str(tr.value) for tr in runs(ex, "inner")) == ["a", "b"]


def test_failed_iteration_fails_foreach_and_stops_next_iterations() -> None:
    _, ex = run(
        _foreach(
            '["a", "b", "c"]',
            1,
            "      - id: r\n        type: io.kestra.plugin.core.execution.Fail\n"
            "        runIf: \"{{ taskrun.value == 'b' }}\"\n",
        )
    )
    assert ex.state.current == State.FAILED
    assert [(tr.value, tr.state.current) for tr in runs(ex, "r")] == [
        ("a", State.SKIPPED),
        ("b", State.FAILED),
    ]


def test_each_sequential() -> None:
    _, ex = run(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.EachSequential
            value: ["x", "y"]
            tasks:
              - id: r
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}"
              - id: r2
                type: io.kestra.plugin.core.debug.Return
                format: "2{{ taskrun.value }}"
        """
    )
    assert ex.state.current == State.SUCCESS
    assert [(tr.task_id, tr.value) for tr in ex.task_run_list[1:]] == [
        ("r", "x"),
        ("r2", "x"),
        ("r", "y"),
        ("r2", "y"),
    ]


def test_each_parallel_with_concurrent() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(
        flow_yaml(
            """
            tasks:
              - id: each
                type: io.kestra.plugin.core.flow.EachParallel
                value: '["a", "b", "c", "d"]'
                concurrent: 2
                tasks:
                  - id: r
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ taskrun.value }}"
            """
        )
    )
    eid = sim.create("ns", "f")
    sim.run()
    assert len(sim.worker_queue) == 2
    sim.hold_workers = False
    sim.run()
    ex = sim.execution(eid)
    assert ex.state.current == State.SUCCESS
    assert sorted(_values(ex)) == ["a", "b", "c", "d"]  # type: ignore[type-var]


def test_each_parallel_nested_in_each_sequential() -> None:
    _, ex = run(
        """
        tasks:
          - id: seq
            type: io.kestra.plugin.core.flow.EachSequential
            value: ["s1", "s2"]
            tasks:
              - id: par
                type: io.kestra.plugin.core.flow.EachParallel
                value: ["p1", "p2"]
                tasks:
                  - id: r
                    type: io.kestra.plugin.core.debug.Return
                    format: "{{ parent.taskrun.value }}/{{ taskrun.value }}"
        """
    )
    assert ex.state.current == State.SUCCESS
    assert sorted(tr.outputs["value"] for tr in runs(ex, "r")) == [  # type: ignore[index]
        "s1/p1",
        "s1/p2",
        "s2/p1",
        "s2/p2",
    ]
