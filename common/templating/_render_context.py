"""The template functions of a render that must be a pure function of its arguments.

The defaults in ``_functions`` read the clock, an unseeded random generator and the environment:
right for a worker running a task, wrong for the executor's core, whose ``step`` must give the
same result for the same arguments. A ``RenderContext`` replaces them for one render:

- ``now()`` is the ``now`` the caller passes (the step's ``now``);
- ``uuid()`` and ``randomInt()`` draw from a generator seeded by the caller's seed;
- ``secret()``, ``read()``, ``fileExists()``, ``fileSize()`` and ``kv()`` need a worker (the
  environment, the internal storage): they fail the render with a message saying so. The
  executor's core replaces ``kv()`` with a reader of a KV snapshot its shell gives
  (``executor/kv.py``); renders without one (Flow trigger conditions) keep this failure.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from common.errors import TemplateError

from ._functions import at_zone, random_int

WORKER_ONLY = ("secret", "read", "fileExists", "fileSize", "kv")


def _worker_only(name: str) -> Callable[..., Any]:
    def function(*args: Any, **kwargs: Any) -> Any:
        raise TemplateError(
            f"function '{name}()' is only available in the properties of tasks run by a worker "
            "(Log, Return, scripts, HTTP...); the executor renders this property itself "
            "(flowable conditions and values, runIf, labels, subflow inputs, flow outputs)"
        )

    return function


class RenderContext:
    """``now`` and a random source seeded by ``seed``: plain data (str, numbers, lists, maps),
    whose ``repr`` is the same in every process."""

    def __init__(self, now: datetime, *seed: Any) -> None:
        self.now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        self.seed = seed
        self._random: random.Random | None = None

    def _generator(self) -> random.Random:
        # made on first use: most renders call no random function
        if self._random is None:
            text = "\x1f".join(repr(part) for part in self.seed)
            digest = hashlib.sha256(text.encode()).digest()
            self._random = random.Random(int.from_bytes(digest, "big"))
        return self._random

    def _now(self, timeZone: str | None = None) -> datetime:  # noqa: N803 - Kestra's name
        return at_zone(self.now, timeZone)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._generator().getrandbits(128), version=4))

    def _random_int(self, lower: Any, upper: Any) -> int:
        return random_int(self._generator(), lower, upper)

    def functions(self) -> dict[str, Callable[..., Any]]:
        functions: dict[str, Callable[..., Any]] = {
            name: _worker_only(name) for name in WORKER_ONLY
        }
        functions |= {"now": self._now, "uuid": self._uuid, "randomInt": self._random_int}
        return functions
