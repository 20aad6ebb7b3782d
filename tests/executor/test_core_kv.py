"""``kv()`` in properties the executor renders, with a pure core (``executor/kv.py``).

Kestra's ``KvFunction`` (kestra-io/kestra@58c1ca2, ``core/src/main/java/io/kestra/core/
runners/pebble/functions/KvFunction.java``) reads the store wherever Pebble renders, the
executor's ``If.condition`` and ``runIf`` included. Lanner's core does no I/O: it renders with
the snapshot of KV entries its caller gives and lists the keys it missed; the shells' helper
``step_with_kv`` reads those through the KV store and steps again. End to end on both
backends: ``tests/embedded/compat_exec_flows.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from common.flow import parse_flow
from common.models.execution import Execution
from common.models.messages import NewExecution
from common.models.state import State
from common.storage.kv import KVStore
from common.storage.local import LocalStorage
from executor.core import step
from executor.kv import KVRead, step_with_kv, storage_reader

from .core_util import flow_yaml

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
FLOW = parse_flow(
    flow_yaml(
        """\
        tasks:
          - id: check
            type: io.kestra.plugin.core.flow.If
            condition: "{{ kv('mode') == 'fast' }}"
            then:
              - id: fast
                type: io.kestra.plugin.core.debug.Return
                format: fast
            else:
              - id: slow
                type: io.kestra.plugin.core.debug.Return
                format: slow
        """
    )
)


def new_execution() -> NewExecution:
    ex = Execution(id="e1", namespace="ns", flow_id="f")
    ex.set_state(State.CREATED, NOW)
    return NewExecution(id="new:e1", execution_id="e1", execution=ex)


def started(result_state: object) -> list[str]:
    return [tr.task_id for tr in result_state.execution.task_run_list]  # type: ignore[attr-defined]


def test_without_a_snapshot_kv_is_worker_only() -> None:
    result = step(FLOW, None, new_execution(), NOW)
    assert result.state is not None
    assert result.state.execution.state.current == State.FAILED
    assert any("only available" in log.message for log in result.logs)


def test_the_core_lists_the_keys_it_missed_and_renders_a_snapshot() -> None:
    missed = step(FLOW, None, new_execution(), NOW, kv={})
    assert missed.kv_missing == {("ns", "mode")}
    given = {("ns", "mode"): KVRead(True, "fast")}
    first = step(FLOW, None, new_execution(), NOW, kv=given)
    again = step(FLOW, None, new_execution(), NOW, kv=given)
    assert first.kv_missing == set()
    assert started(first.state) == ["check", "fast"]
    assert first.state is not None and again.state is not None
    assert first.state.model_dump_json() == again.state.model_dump_json()  # pure


def test_step_with_kv_reads_the_store(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    read = storage_reader(storage)
    slow = step_with_kv(
        FLOW, None, new_execution(), NOW, None, running_count=0, owned=True, read=read
    )
    assert started(slow.state) == ["check", "slow"]  # missing: null, not 'fast'
    KVStore(storage, "main", "ns").put("mode", "fast")
    fast = step_with_kv(
        FLOW, None, new_execution(), NOW, None, running_count=0, owned=True, read=read
    )
    assert started(fast.state) == ["check", "fast"]


TRIGGERED = parse_flow(
    flow_yaml(
        """\
        tasks:
          - id: t
            type: io.kestra.plugin.core.debug.Return
            format: x
        triggers:
          - id: on_f
            type: io.kestra.plugin.core.trigger.Flow
            conditions:
              - type: io.kestra.plugin.core.condition.ExpressionCondition
                expression: "{{ kv('go') == 'yes' }}"
        """,
        flow_id="g",
    )
)


def test_flow_trigger_conditions_read_kv(tmp_path: Path) -> None:
    """Kestra's ``ExpressionCondition`` renders with the same Pebble ``kv`` function: the
    shells give ``flow_triggers.evaluate`` the entries ``flow_trigger_kv`` read (a dry run on
    a scratch copy of the windows)."""
    from executor import flow_triggers
    from executor.kv import flow_trigger_kv

    ended = Execution(id="e1", namespace="ns", flow_id="f")
    ended.set_state(State.SUCCESS, NOW)
    storage = LocalStorage(tmp_path)
    read = storage_reader(storage)
    windows = flow_triggers.Windows()

    def fire() -> list[Execution]:
        kv = flow_trigger_kv([TRIGGERED], ended, State.RUNNING, NOW, windows, (), read)
        assert kv is not None and kv.missing == set()
        created, _ = flow_triggers.evaluate(
            [TRIGGERED], ended, State.RUNNING, NOW, windows, (), kv=kv
        )
        return created

    assert fire() == []  # missing: null
    KVStore(storage, "main", "ns").put("go", "yes")
    (created,) = fire()
    assert created.flow_id == "g"
    plain = parse_flow(
        flow_yaml(
            "tasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
        )
    )
    assert flow_trigger_kv([plain], ended, State.RUNNING, NOW, windows, (), read) is None
