"""``python -m tests.bench.queue_cpu``: CPU seconds of the embedded queue alone per round trip.

The calls ``lanner server local`` makes on its hot path, without the rest of it and without
threads (so no scheduling in the measure): in one process, on one SQLite file, a record is
emitted to ``executor``; an "executor" member polls it and forwards it to ``worker-tasks`` with
``produce_and_commit``; a "worker" member does the same to ``executions``; an "indexer" member
reads the three topics and commits; three more members poll topics nobody writes (catalog,
kills, workers), as those loops do. CPU time per record that goes round.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common.queue.base import EXECUTIONS, EXECUTOR, FLOWS, KILLS, WORKER_TASKS, WORKERS
from common.queue.sqlite import SqliteDatabase, SqliteQueue


def run(trips: int, path: Path, batch: int) -> float:
    """CPU seconds of ``trips`` records going round, ``batch`` at a time, in one thread (no
    scheduling in the measure: every poll has its records, every wait is zero)."""
    queue = SqliteQueue(SqliteDatabase(str(path)))
    executor = queue.subscribe([EXECUTOR], "executor")
    worker = queue.subscribe([WORKER_TASKS], "worker")
    indexer = queue.subscribe([EXECUTOR, WORKER_TASKS, EXECUTIONS], "indexer")
    idle = [queue.subscribe([topic], f"idle-{topic}") for topic in (FLOWS, KILLS, WORKERS)]
    cpu = time.process_time()
    for n in range(0, trips, batch):
        queue.emit_many([(EXECUTOR, f"e{(n + i) % 64}", b"x" * 200) for i in range(batch)])
        for source, target in ((executor, WORKER_TASKS), (worker, EXECUTIONS)):
            records = source.poll(batch, timeout=0)
            source.produce_and_commit([(target, r.key, r.value) for r in records], records)
        indexer.commit(indexer.poll(500, timeout=0))
        for sub in idle:
            sub.poll(100, timeout=0)
    cpu = time.process_time() - cpu
    for sub in (executor, worker, indexer, *idle):
        sub.close()
    queue.close()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.queue_cpu", description=__doc__)
    parser.add_argument("--trips", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1, help="records per poll")
    args = parser.parse_args()
    results = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="lanner-qcpu-") as tmp:
            cpu = run(args.trips, Path(tmp) / "q.db", args.batch)
        results.append(cpu / args.trips * 1000)
        print(f"{args.trips} trips: {cpu:.2f} CPU s = {results[-1]:.3f} ms/trip")
    print(f"median {sorted(results)[len(results) // 2]:.3f} CPU ms per trip")


if __name__ == "__main__":
    main()
