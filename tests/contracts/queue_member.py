"""A queue group member in its own process, for the contract's kill -9 tests.

``python -m tests.contracts.queue_member '<json spec>'`` builds the queue from the spec's
settings through ``common.backends.create_queue`` (as a component would), joins the group and
polls until it is killed. It prints one JSON line per event (flushed at once, so a kill -9 loses
none): ``subscribed``, ``assigned``/``revoked`` (partitions), ``record`` (each record polled)
and ``committed`` (the values it acknowledged, once the acknowledgement returned).

Spec keys: ``settings`` (``Settings`` values), ``topics``, ``group``, ``instance_id``;
``commit_prefix``: acknowledge only the records whose value starts with it (``null``: none);
``transform_to`` + ``out_prefix``: for every batch, ``produce_and_commit`` one record per input
record to that topic (same key, value ``out_prefix + value``) together with the batch's offsets.
Started with ``LANNER_CRASH_AT`` (``common.crash_points``) it dies half-way through that.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from common.backends import create_queue
from common.queue.base import Record, TopicPartition
from common.settings import Settings


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _partitions(partitions: Sequence[TopicPartition]) -> list[list[Any]]:
    return [[tp.topic, tp.partition] for tp in partitions]


def _value(record: Record) -> str | None:
    return None if record.value is None else record.value.decode()


def main(spec: dict[str, Any]) -> None:
    queue = create_queue(Settings(**spec["settings"]), client_id="queue-member")
    subscription = queue.subscribe(
        spec["topics"],
        spec["group"],
        instance_id=spec.get("instance_id"),
        on_assigned=lambda tps: say("assigned", partitions=_partitions(tps)),
        on_revoked=lambda tps: say("revoked", partitions=_partitions(tps)),
    )
    say("subscribed")
    commit_prefix: str | None = spec.get("commit_prefix")
    transform_to: str | None = spec.get("transform_to")
    out_prefix = spec.get("out_prefix", "out:").encode()
    while True:
        records = subscription.poll(max_records=100, timeout=0.2)
        for record in records:
            say(
                "record",
                topic=record.topic,
                key=record.key,
                value=_value(record),
                partition=record.partition,
                offset=record.offset,
            )
        if not records:
            continue
        if transform_to is not None:
            outgoing = [(transform_to, r.key, out_prefix + (r.value or b"")) for r in records]
            subscription.produce_and_commit(outgoing, records)
            say("committed", values=[_value(r) for r in records])
        elif commit_prefix is not None:
            chosen = [r for r in records if (_value(r) or "").startswith(commit_prefix)]
            if chosen:
                subscription.commit(chosen)
                say("committed", values=[_value(r) for r in chosen])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
