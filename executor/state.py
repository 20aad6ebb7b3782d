"""What the executor stores per execution, between two inputs."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from common.models.base import WireModel
from common.models.execution import Execution
from common.models.state import State

# Input ids remembered for deduplication. Worker results of one task run carry distinct ids, so
# an execution rarely sees more than a few hundred; the oldest are dropped past this bound.
MAX_APPLIED = 5000


class ExecutorState(WireModel):
    execution: Execution
    applied: list[str] = Field(default_factory=list)
    # state the execution ends in once every task run stopped after a kill (KILLED, FAILED, ...)
    kill_state: State | None = None
    # key -> when the core wants to be called again (retry delays, pauses, WaitFor, SLA)
    wakeups: dict[str, datetime] = Field(default_factory=dict)
    # CREATED and waiting for the flow agent's admission (Kafka executor, limited flows)
    awaiting_admission: bool = False
    # PAUSED through the API (``ManualPause``): nothing new starts until a ``Resume``
    manual_pause: bool = False
    # ForEachItem: batch executions' flow outputs by items task run id, then batch number
    # (given to the merge task); ``batch_executions``: the batch execution ids as states written
    # before they were derived from the task run (``core.batch_execution_id``), read only
    batch_outputs: dict[str, dict[str, dict[str, object]]] = Field(default_factory=dict)
    batch_executions: dict[str, list[str]] = Field(default_factory=dict)

    def next_wakeup(self) -> datetime | None:
        return min(self.wakeups.values()) if self.wakeups else None
