"""Models that cross a process boundary."""

from .execution import (
    Attempt as Attempt,
)
from .execution import (
    Execution as Execution,
)
from .execution import (
    ExecutionTrigger as ExecutionTrigger,
)
from .execution import (
    Label as Label,
)
from .execution import (
    StateEntry as StateEntry,
)
from .execution import (
    StateInfo as StateInfo,
)
from .execution import (
    TaskRun as TaskRun,
)
from .state import TERMINAL as TERMINAL
from .state import State as State
