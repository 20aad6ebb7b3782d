"""A test's Kafka topics, the environment of its Lanner processes, and a queue to drive them
as the webserver and the workers do."""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.backends import create_queue
from common.flow import parse_flow
from common.flow.store import flow_event, flow_key
from common.models.execution import Execution
from common.models.messages import NewExecution
from common.models.state import State
from common.queue.base import EXECUTIONS, EXECUTOR, FLOWS, Queue
from common.repository.base import FlowRecord
from common.settings import Settings
from common.storage.local import LocalStorage
from tests.ha.test_queue_kafka import kafka_queue_settings
from tests.infra.waiting import wait_until


class Cluster:
    """Kafka topics of one test, the environment of its processes, a queue to talk to them."""

    def __init__(self, servers: str, prefix: str, tmp: Path) -> None:
        self.settings_dict: dict[str, Any] = kafka_queue_settings(servers, prefix)
        self.tmp = tmp
        # one data directory, as on a shared volume: internal storage is common to every process
        self.data_dir = tmp / "data"
        self.storage = LocalStorage(self.data_dir / "storage")
        self.queue: Queue = create_queue(Settings(**self.settings_dict), storage=self.storage)
        self.snapshots = self.queue.subscribe([EXECUTIONS], f"{prefix}test-reader")
        self.latest: dict[str, Execution] = {}
        self.revisions: dict[tuple[str, str], int] = {}
        self.progress: dict[str, list[float]] = {}  # id -> when its snapshots arrived

    def env(self, name: str) -> dict[str, str]:
        return {
            "LANNER_QUEUE": "kafka",
            "LANNER_KAFKA_BOOTSTRAP_SERVERS": self.settings_dict["kafka_bootstrap_servers"],
            "LANNER_KAFKA_TOPIC_PREFIX": self.settings_dict["kafka_topic_prefix"],
            "LANNER_DATA_DIR": str(self.data_dir),
            "LANNER_METRICS_PORT": "0",
            "LANNER_INSTANCE_ID": name,
            "LANNER_WORKER_ID": name,
            "LANNER_WORKER_DEAD_AFTER_SECONDS": "5",
            "LANNER_QUEUE_MAX_RECORD_BYTES": str(self.settings_dict["queue_max_record_bytes"]),
        }

    def deploy(self, source: str) -> None:
        flow = parse_flow(source)
        ident = ("main", flow.namespace, flow.id)
        revision = self.revisions.get((flow.namespace, flow.id), 0) + 1
        self.revisions[(flow.namespace, flow.id)] = revision
        record = FlowRecord(*ident, revision=revision, source=source, updated=datetime.now(UTC))
        self.queue.emit(FLOWS, flow_key(*ident), flow_event(record))

    def create(
        self,
        namespace: str,
        flow_id: str,
        execution_id: str,
        inputs: dict[str, Any] | None = None,
    ) -> str:
        execution = Execution(
            id=execution_id,
            namespace=namespace,
            flow_id=flow_id,
            flow_revision=self.revisions[(namespace, flow_id)],
            inputs=inputs or {},
        )
        execution.set_state(State.CREATED, datetime.now(UTC))
        new = NewExecution(id=f"new:{execution_id}", execution_id=execution_id, execution=execution)
        self.queue.emit(EXECUTOR, execution_id, new.to_json())
        return execution_id

    def read(self) -> None:
        for record in self.snapshots.poll(500, timeout=0.2):
            if record.value is not None:
                execution = Execution.model_validate_json(record.value)
                known = self.latest.get(execution.id)
                if known is None or known.sequence < execution.sequence:
                    self.latest[execution.id] = execution
                    self.progress.setdefault(execution.id, []).append(time.monotonic())

    def wait_ended(self, ids: list[str], timeout: float = 60) -> dict[str, Execution]:
        def ended() -> bool:
            self.read()
            return all(i in self.latest and self.latest[i].state.current.terminal for i in ids)

        wait_until(ended, timeout, f"executions {ids} to end")
        return {i: self.latest[i] for i in ids}

    def close(self) -> None:
        self.snapshots.close()
        self.queue.close()


def flow(body: str, flow_id: str = "f") -> str:
    return f"id: {flow_id}\nnamespace: ha\n" + textwrap.dedent(body)
