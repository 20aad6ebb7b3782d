"""CPU per operation of the SQLite queue's hot path, in one process (no server, no HTTP):
``python -m tests.bench.queue_micro [N]``. Runs against whatever ``common.queue.sqlite`` is
importable, so the same file measures an old worktree too (it uses only emit, subscribe with
(topics, group), poll, commit and db.transaction)."""

from __future__ import annotations

import os
import sys
import tempfile
import time

from common.queue.sqlite import SqliteDatabase, SqliteQueue


def main(n: int) -> None:
    db = SqliteDatabase(os.path.join(tempfile.mkdtemp(), "q.db"))
    queue = SqliteQueue(db)
    sub = queue.subscribe(["executor"], "g1")
    flows = queue.subscribe(["flows"], "g2")
    spent: dict[str, float] = {}

    start = time.process_time()
    for i in range(n):
        queue.emit("executor", f"k{i % 50}", b"x" * 300)
    spent["emit"] = time.process_time() - start

    start = time.process_time()
    while records := sub.poll(3, timeout=0):
        with db.transaction():
            sub.commit(records)
    spent["poll of 3 + commit, per record"] = time.process_time() - start

    start = time.process_time()
    for _ in range(n):
        flows.poll(1000, timeout=0)
    spent["empty poll"] = time.process_time() - start

    start = time.process_time()
    for i in range(n):
        queue.emit("executor", f"k{i % 50}", b"x" * 300)
        records = sub.poll(500, timeout=0)
        with db.transaction():
            queue.emit_many([("executions", f"k{i % 50}", b"y" * 300)])
            sub.commit(records)
    spent["emit, poll, emit + commit"] = time.process_time() - start
    print("; ".join(f"{name} {1e6 * s / n:.1f} us" for name, s in spent.items()))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
