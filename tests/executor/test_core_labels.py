"""Labels set from the API (Kestra's ``ExecutionController.setLabels``, the ``actions/labels``
and ``labels/by-ids|by-query`` routes) are an executor input: the executor owns the execution,
so its snapshots carry them afterwards (a restart, a late snapshot never drops them).

Kestra's merge: given labels win over existing ones of the same key, the others stay; system
labels are never changed by it (the webserver refuses those that differ)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.flow.catalog import FlowCatalog
from common.models.execution import Label
from common.models.messages import SetLabels
from common.models.state import State
from common.queue import base as topics
from executor.core import CoreConfig, step
from executor.faust_app import ExecutionHandler

from .core_util import flow_yaml
from .harness import Sim, _Flows

FAILS_THEN_STEP = """\
tasks:
  - id: a
    type: io.kestra.plugin.core.debug.Return
    format: one
  - id: b
    type: io.kestra.plugin.core.execution.Fail
"""


def labels(sim: Sim, exec_id: str) -> dict[str, str]:
    return {label.key: label.value for label in sim.execution(exec_id).labels}


def order(exec_id: str, n: int, **given: str) -> SetLabels:
    pairs = [Label(key=k, value=v) for k, v in given.items()]
    return SetLabels(id=f"labels:{n}", execution_id=exec_id, labels=pairs)


def test_labels_set_while_running_stay_when_it_ends() -> None:
    sim = Sim(hold_workers=True)
    sim.deploy(flow_yaml(FAILS_THEN_STEP))
    exec_id = sim.create("ns", "f")
    sim.run()  # `a` held by its worker
    sim.send(order(exec_id, 1, team="data"))
    sim.hold_workers = False
    sim.run()
    assert sim.execution(exec_id).state.current == State.FAILED
    assert labels(sim, exec_id)["team"] == "data"


def test_labels_of_an_ended_execution_survive_a_restart() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(FAILS_THEN_STEP))
    exec_id = sim.create("ns", "f")
    sim.run()
    ended = sim.execution(exec_id)
    assert ended.state.current == State.FAILED
    sim.send(order(exec_id, 1, reviewed="yes", team="a"))
    sim.send(order(exec_id, 2, team="b"))
    sim.run()
    after = sim.execution(exec_id)
    assert after.state.current == State.FAILED  # labels change nothing else
    assert after.sequence > ended.sequence  # a new snapshot, newer than the ended one
    assert labels(sim, exec_id) | {"reviewed": "yes", "team": "b"} == labels(sim, exec_id)
    sim.restart(exec_id)
    sim.run()
    assert sim.execution(exec_id).metadata.attempt_number == 2
    assert {"reviewed": "yes", "team": "b"}.items() <= labels(sim, exec_id).items()


def test_system_labels_stay_and_an_empty_label_is_dropped() -> None:
    sim = Sim()
    sim.deploy(flow_yaml(FAILS_THEN_STEP))
    exec_id = sim.create("ns", "f")
    sim.run()
    before = labels(sim, exec_id)
    system = [k for k in before if k.startswith("system.")]
    assert system  # the correlation id
    sim.send(order(exec_id, 1, **{system[0]: "other", "": ""}, kept="1"))
    sim.run()
    assert labels(sim, exec_id) == {**before, "kept": "1"}


def test_labels_for_an_execution_the_executor_no_longer_holds() -> None:
    """Kafka's executor forgets an ended execution after its retention: the order carries the
    stored copy, which takes the labels (a new snapshot), and changes no state."""
    sim = Sim()
    sim.deploy(flow_yaml(FAILS_THEN_STEP))
    exec_id = sim.create("ns", "f")
    sim.run()
    stored = sim.execution(exec_id)
    lost = step(None, None, order(exec_id, 1, team="x"), datetime.now(UTC))
    assert lost.state is None  # without the stored copy: nothing to apply it to
    event = order(exec_id, 1, team="x").model_copy(update={"execution": stored})
    result = step(None, None, event, datetime.now(UTC))
    assert result.changed and result.state is not None and not result.ended
    snapshot = result.state.execution
    assert snapshot.state.current == State.FAILED
    assert snapshot.sequence == stored.sequence + 1
    assert {label.key: label.value for label in snapshot.labels}["team"] == "x"


def test_kafka_handler_labels_a_purged_execution_without_notices() -> None:
    """The Kafka execution agent's handler: labels for an execution its table forgot give one
    ``executions`` snapshot and no flow notice (no Flow trigger fires again)."""
    sim = Sim()
    sim.deploy(flow_yaml(FAILS_THEN_STEP))
    exec_id = sim.create("ns", "f")
    sim.run()
    stored = sim.execution(exec_id)
    handler = ExecutionHandler(
        FlowCatalog(_Flows(sim.sources)), CoreConfig(), retention=timedelta(days=1)
    )
    event = order(exec_id, 1, team="x").model_copy(update={"execution": stored})
    state, _, out = handler.apply(exec_id, event.to_json(), None)
    assert state is not None
    assert [topic for topic, _, _ in out] == [topics.EXECUTIONS]
    dropped = handler.apply("other", order("other", 2, team="x").to_json(), None)
    assert dropped == (None, None, [])
