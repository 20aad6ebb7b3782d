"""Lanner scheduler component: Schedule trigger evaluation and the loop that runs it."""

from ._embedded import Scheduler as Scheduler
from ._store import MemoryTriggerStore as MemoryTriggerStore
from ._store import SqliteTriggerStore as SqliteTriggerStore
from ._store import TriggerStore as TriggerStore
from .schedule import ScheduleResult as ScheduleResult
from .schedule import evaluate as evaluate
from .schedule import next_date as next_date
from .schedule import previous_date as previous_date
from .schedule import scheduled_execution_id as scheduled_execution_id
from .schedule import trigger_variables as trigger_variables

__all__ = [
    "MemoryTriggerStore",
    "ScheduleResult",
    "Scheduler",
    "SqliteTriggerStore",
    "TriggerStore",
    "evaluate",
    "next_date",
    "previous_date",
    "scheduled_execution_id",
    "trigger_variables",
]
