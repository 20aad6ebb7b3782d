"""Named points where a fault-injection test can make this process die with SIGKILL.

A crash half-way through an atomic unit (a queue's produce-and-commit) cannot be reached from
outside the process deterministically: a test would have to win a race against the code it
kills. Instead the code calls ``crash_point("name")`` at the point of interest, and a test starts
the process with ``LANNER_CRASH_AT=name``: the process kills itself there, exactly as ``kill -9``
would, with no cleanup, no ``finally`` and no flushing. Unset (always, outside tests), a crash
point is one dictionary lookup.

Points:
    produce_and_commit:before-commit   the records of a ``Subscription.produce_and_commit`` are
                                       written (Kafka: delivered to the brokers inside the open
                                       transaction) and its offsets sent, but not committed
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "LANNER_CRASH_AT"

BEFORE_COMMIT = "produce_and_commit:before-commit"


def crash_point(name: str) -> None:
    """Dies here with SIGKILL when ``LANNER_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
