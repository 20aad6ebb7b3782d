"""What an order on one execution does, by Kestra's rules: the executor inputs it sends and the
execution as the caller sees it right after (Kestra answers with that execution).

Shared by ``routers/execution_actions.py`` (``/executions/{id}/actions/...``) and
``routers/execution_bulk.py`` (``by-ids`` / ``by-query``). Every function is pure: it reads the
stored execution and raises ``Refused`` (status + Kestra's message) when the order does not
apply; the caller emits the inputs and stores what needs storing.

Kestra's rules (``ExecutionService`` and ``ConcurrencyLimitService`` of kestra-io/kestra,
``ExecutionController`` 0.19-2.0):

* kill: 409 "Execution is already finished, can't kill it" for an ended execution;
* restart: the execution must be ended or PAUSED (409 otherwise), and hold a FAILED or PAUSED
  task run (422 "No task found to restart execution from!"); the answer keeps the id, state
  RESTARTED, those task runs RESTARTED, their ended ancestors RUNNING (a WARNING or SUCCESS
  execution whose failed task run an AllowFailure absorbed restarts too). A PAUSED execution
  restarts from its PAUSED task runs, which carry on (RUNNING) without pausing again (Kestra's
  ``Pause.needPause`` looks for PAUSED in the history); a manual pause holds none: 422;
* replay: a new execution (``parentId``/``originalId`` set), CREATED, or RESTARTED from a task
  run, whatever the state of the original (Kestra checks none); an unknown task run is
  Kestra's 422 "No task found to restart execution from!";
* pause: only a RUNNING execution (409 "The execution is not running"); what runs finishes,
  nothing new starts until resumed;
* unqueue: only a QUEUED execution (409 "Only QUEUED execution can be unqueued");
* force-run: not an ended execution (409 "Only non terminated executions can be forced run.");
  CREATED and QUEUED start, PAUSED resumes, anything else is sent again unchanged;
* labels: only an ended execution (400 "The execution is not terminated"); system labels
  cannot be set (422); given labels win over the existing ones. Kestra saves the execution
  itself; Lanner sends a ``SetLabels`` input, so the executor's snapshot carries them, and
  stores the answer too (best effort, ``sequence`` + 1) so that a GET right after shows them
  before the snapshot is indexed (read-your-writes on Kafka).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from common.executions import set_labels as merged_labels
from common.executions import system_label_refused
from common.models.execution import Execution, Label
from common.models.flow import Flow
from common.models.messages import (
    Dequeue,
    ExecutorInput,
    Kill,
    ManualPause,
    Restart,
    Resume,
    SetLabels,
    Timer,
)
from common.models.state import State
from common.replay import replay as replay_execution

NO_TASK_TO_RESTART = "No task found to restart execution from!"


class Refused(Exception):
    """The order does not apply to this execution: the HTTP status and Kestra's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Decision:
    """Inputs for the executor (keyed by ``answer.id`` unless ``new``) and the answer."""

    answer: Execution
    orders: list[ExecutorInput] = field(default_factory=list)
    new: bool = False  # ``answer`` is a new execution to store and submit (replay)
    # ``answer`` is also stored, best effort, after the orders (read-your-writes: a GET right
    # after shows it; the executor's snapshot of the same ``sequence`` replaces it)
    store: bool = False


def _terminal(execution: Execution) -> bool:
    return execution.state.current.terminal


def kill(execution: Execution, order_id: str, now: datetime) -> Decision:
    if _terminal(execution):
        raise Refused(409, "Execution is already finished, can't kill it")
    answer = execution.model_copy(deep=True)
    if answer.state.current != State.KILLING:
        answer.set_state(State.KILLING, now)
    return Decision(answer, [Kill(id=order_id, execution_id=execution.id)])


def restart(
    execution: Execution, order_id: str, now: datetime, revision: int | None = None
) -> Decision:
    current = execution.state.current
    if not (current.terminal or current == State.PAUSED):
        raise Refused(
            409,
            f"Execution must be terminated to be restarted, current state is '{current}' !",
        )
    restartable = [
        tr for tr in execution.task_run_list if tr.state.current in (State.FAILED, State.PAUSED)
    ]
    if not restartable:
        raise Refused(422, NO_TASK_TO_RESTART)
    if revision is not None and revision != execution.flow_revision:
        raise Refused(
            422,
            f"Lanner restarts an execution on its own flow revision ({execution.flow_revision}); "
            "replay it to run another revision",
        )
    answer = execution.model_copy(deep=True)
    by_id = {tr.id: tr for tr in answer.task_run_list}
    # what the executor restarts: a PAUSED execution from its PAUSED task runs only
    # (``core._Core.restart_paused``), an ended one from its FAILED/KILLED/PAUSED ones
    again = (
        (State.PAUSED,) if current == State.PAUSED else (State.FAILED, State.KILLED, State.PAUSED)
    )
    for tr in answer.task_run_list:
        if tr.state.current in again:
            paused = tr.state.current == State.PAUSED
            tr.set_state(State.RESTARTED, now)
            if paused:  # the Pause carries on (RUNNING), as the executor makes it
                tr.set_state(State.RUNNING, now)
            parent = by_id.get(tr.parent_task_run_id or "")
            while parent is not None:  # Kestra's ancestors: the containers run again
                if parent.state.current.terminal and parent.state.current != State.FAILED:
                    parent.set_state(State.RUNNING, now)
                parent = by_id.get(parent.parent_task_run_id or "")
    answer.set_state(State.RESTARTED, now)
    answer.metadata.attempt_number += 1
    return Decision(answer, [Restart(id=order_id, execution_id=execution.id)])


def replay(
    execution: Execution, flow: Flow, task_run_id: str | None, new_id: str, now: datetime
) -> Decision:
    # no state check: Kestra's ``ExecutionController.replay`` / ``ExecutionService.replay``
    # (kestra-io/kestra@58c1ca2) replay an execution in any state
    if task_run_id is not None and execution.find_task_run(task_run_id) is None:
        raise Refused(422, NO_TASK_TO_RESTART)
    return Decision(replay_execution(execution, flow, task_run_id, new_id, now), new=True)


def resume(execution: Execution, order_id: str, now: datetime) -> Decision:
    """A paused task run goes on, or else the execution paused through ``pause``."""
    if execution.state.current != State.PAUSED:
        raise Refused(409, f"Execution '{execution.id}' is not paused, can't resume it")
    answer = execution.model_copy(deep=True)
    for tr in answer.task_run_list:
        if tr.state.current == State.PAUSED:
            tr.set_state(State.RUNNING, now)
            break
    answer.set_state(State.RUNNING, now)
    return Decision(answer, [Resume(id=order_id, execution_id=execution.id)])


def pause(execution: Execution, order_id: str, now: datetime) -> Decision:
    if execution.state.current != State.RUNNING:
        raise Refused(409, "The execution is not running")
    answer = execution.model_copy(deep=True)
    answer.set_state(State.PAUSED, now)
    return Decision(answer, [ManualPause(id=order_id, execution_id=execution.id)])


def unqueue(execution: Execution, order_id: str, now: datetime, state: State) -> Decision:
    if execution.state.current != State.QUEUED:
        raise Refused(409, "Only QUEUED execution can be unqueued")
    if state == State.KILLED:
        return kill(execution, order_id, now)
    if state != State.RUNNING:
        raise Refused(422, f"Lanner unqueues to RUNNING or KILLED, not {state}")
    answer = execution.model_copy(deep=True)
    answer.set_state(State.RUNNING, now)
    # a slot given outside the limit: the executor starts it as if none were running
    return Decision(answer, [Dequeue(id=order_id, execution_id=execution.id, running_count=0)])


def force_run(execution: Execution, order_id: str, now: datetime) -> Decision:
    current = execution.state.current
    if current.terminal:
        raise Refused(409, "Only non terminated executions can be forced run.")
    if current == State.QUEUED:
        return unqueue(execution, order_id, now, State.RUNNING)
    if current == State.PAUSED:
        return resume(execution, order_id, now)
    if current == State.CREATED:
        answer = execution.model_copy(deep=True)
        answer.set_state(State.RUNNING, now)
        # the start wake-up of a scheduled execution, due now: it starts (limit permitting)
        return Decision(answer, [Timer(id=order_id, execution_id=execution.id, key="start:")])
    return Decision(execution)


def set_labels(execution: Execution, labels: Sequence[Label], order_id: str) -> Decision:
    """An executor input (the executor owns the execution: its next snapshot carries them on
    every backend); the answer is the execution with the labels merged as the executor will."""
    if not _terminal(execution):
        raise Refused(400, "The execution is not terminated")
    offending = system_label_refused(execution.labels, list(labels))
    if offending is not None:
        raise Refused(
            422,
            "System labels can only be set by Kestra itself, offending label: "
            f"{offending.key}={offending.value}",
        )
    given = list(labels)
    answer = execution.model_copy(
        deep=True,
        update={
            "labels": merged_labels(execution.labels, given),
            # the executor's snapshot for this input: the stored one's sequence + 1, the same
            # labels (``common.executions.set_labels`` on both sides)
            "sequence": execution.sequence + 1,
        },
    )
    order = SetLabels(id=order_id, execution_id=execution.id, labels=given, execution=execution)
    return Decision(answer, [order], store=True)
