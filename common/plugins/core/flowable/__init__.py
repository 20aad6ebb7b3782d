"""Flowable core tasks, resolved by the executor."""

from __future__ import annotations

from .branch import If, Switch
from .dag import Dag
from .each import EachParallel, EachSequential, ForEach
from .executor_tasks import EXIT_STATES as EXIT_STATES
from .executor_tasks import Exit, Labels, Resume
from .foreachitem import (
    ForEachItem,
    ForEachItemExecutable,
    ForEachItemMergeOutputs,
    ForEachItemSplit,
)
from .pause import Pause
from .sequence import AllowFailure, Parallel, Sequential
from .subflow import Subflow
from .waitfor import LoopUntil, WaitFor
from .workingdir import WorkingDirectory

PLUGINS: list[type] = [
    Sequential,
    Parallel,
    AllowFailure,
    Switch,
    If,
    ForEach,
    EachSequential,
    EachParallel,
    Dag,
    Pause,
    WaitFor,
    LoopUntil,
    Subflow,
    Labels,
    Resume,
    Exit,
    ForEachItem,
    ForEachItemSplit,
    ForEachItemExecutable,
    ForEachItemMergeOutputs,
    WorkingDirectory,
]
