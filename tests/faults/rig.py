"""The fault suite's loaded deployment, what it watches, and how it counts.

* ``Rig``: one Kafka broker and one Elasticsearch node of the suite's own (both get restarted or
  frozen), and every Lanner component its own process (``tests/infra/deployment.py``): a
  webserver without indexer, 2 executors, 2 workers, 2 schedulers, 2 indexers.
* ``Load``: clients creating executions of ``load`` through the webserver's API at a steady
  pace. Each execution carries the label ``phase:<n>`` of the fault under way when it was asked
  for, so each fault's backlog can be checked through the search API.
* ``Observer``: reads the ``executions`` and ``logs`` topics from their start, in the test
  process, for what the API cannot show: every snapshot of an execution (two different terminal
  snapshots are a duplicate terminal state) and every log record produced (the ground truth of
  "each log line indexed exactly once").
* ``Audit``: the counts of the report (``tests/faults/report.py``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from common.models.execution import Execution
from common.models.messages import LogEntry
from common.queue.base import EXECUTIONS, LOGS
from tests.infra.deployment import READY_SECONDS, KafkaDeployment
from tests.infra.elasticsearch import ElasticsearchCluster
from tests.infra.kafka import KafkaCluster
from tests.infra.processes import ManagedProcess, free_ports, http_ok, start_lanner
from tests.infra.waiting import wait_until

NAMESPACE = "lanner.faults"
RATE = 2.0  # executions of `load` created per second, from two clients
DEAD_AFTER = 5  # LANNER_WORKER_DEAD_AFTER_SECONDS: a frozen worker is declared dead after it
TOKEN = "tok:"
TERMINAL = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED")

# Each Log task writes a token unique to its execution and task: counted on the `logs` topic
# and through the logs search API.
LOAD_FLOW = f"""\
id: load
namespace: {NAMESPACE}
tasks:
  - id: first
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ execution.id }}}}"
  - id: log-a
    type: io.kestra.plugin.core.log.Log
    message: "{TOKEN}{{{{ execution.id }}}}:{{{{ task.id }}}}"
  - id: log-b
    type: io.kestra.plugin.core.log.Log
    message: "{TOKEN}{{{{ execution.id }}}}:{{{{ task.id }}}}"
"""
TICK_FLOW = f"""\
id: tick
namespace: {NAMESPACE}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{TOKEN}{{{{ execution.id }}}}:{{{{ task.id }}}}"
triggers:
  - id: every-second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
"""
LOAD_LOG_TASKS = ("log-a", "log-b")


def deploy_flows(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as api:
        for source in (LOAD_FLOW, TICK_FLOW):
            answer = api.post(
                "/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"}
            )
            assert answer.status_code == 200, answer.text


# ---------------------------------------------------------------- the deployment


class Rig:
    """``Rig(kafka, es, base, prefix).start()``; ``restart(name)`` after a kill."""

    ROLES = ("executor", "worker", "scheduler", "indexer")

    def __init__(self, kafka: KafkaCluster, es: ElasticsearchCluster, base: Path, prefix: str):
        self.kafka = kafka
        self.es = es
        self.prefix = prefix
        env = {
            "LANNER_REPOSITORY": "elasticsearch",
            "LANNER_ELASTICSEARCH_URL": es.url,
            "LANNER_ELASTICSEARCH_INDEX_PREFIX": prefix + "_",
            "LANNER_ELASTICSEARCH_REQUEST_TIMEOUT_SECONDS": "3",
            "LANNER_WORKER_DEAD_AFTER_SECONDS": str(DEAD_AFTER),
            "LANNER_SCHEDULER_SESSION_TIMEOUT_SECONDS": "3",
        }
        self.deployment = KafkaDeployment(kafka.bootstrap_servers, prefix + ".", base, env=env)
        self.metrics_ports: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self.deployment.url

    def process(self, name: str) -> ManagedProcess:
        return self.deployment.processes[name]

    def start_replica(self, role: str, name: str) -> ManagedProcess:
        port = self.metrics_ports.setdefault(name, free_ports(1)[0])
        deployment = self.deployment
        args = ["server", role]
        if role == "webserver":
            args += ["--port", str(deployment.port), "--no-indexer"]
        env = {**deployment.env(name), "LANNER_METRICS_PORT": str(port)}
        proc = start_lanner(
            args, deployment.base / "logs" / f"{name}.log", env=env, cwd=deployment.base, name=name
        )
        deployment.processes[name] = proc
        return proc

    def ready(self, name: str) -> bool:
        return http_ok(f"http://127.0.0.1:{self.metrics_ports[name]}/health/ready")

    def wait_ready(self, name: str) -> None:
        proc = self.process(name)
        proc.wait_for(lambda: self.ready(name), READY_SECONDS, "ready (management port)")

    def start(self) -> Rig:
        self.deployment.init_topics()
        names = []
        for role in self.ROLES:
            for i in (1, 2):
                names.append(f"{role}-{i}")
                self.start_replica(role, f"{role}-{i}")
        self.start_replica("webserver", "webserver")
        names.append("webserver")
        for name in names:
            self.wait_ready(name)
        return self

    def restart(self, name: str) -> ManagedProcess:
        role = name.rsplit("-", 1)[0] if name != "webserver" else "webserver"
        proc = self.start_replica(role, name)
        self.wait_ready(name)
        return proc

    def stop(self) -> None:
        self.deployment.stop()


# ---------------------------------------------------------------- the load


@dataclass
class Accepted:
    id: str
    phase: int
    asked: float  # monotonic time the request was sent


class Load:
    """Two clients creating executions of ``load`` at ``RATE`` per second until stopped."""

    def __init__(self, url: str, run: str) -> None:
        self.url = url
        self.run = run
        self.phase = 0
        self.accepted: list[Accepted] = []
        self.statuses: Counter[int | str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(2)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)

    def ids(self, phase: int | None = None) -> list[str]:
        with self._lock:
            return [a.id for a in self.accepted if phase is None or a.phase == phase]

    def asked(self, phase: int) -> dict[str, float]:
        with self._lock:
            return {a.id: a.asked for a in self.accepted if a.phase == phase}

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def _loop(self) -> None:
        interval = len(self._threads) / RATE
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                phase = self.phase
                try:
                    answer = client.post(
                        f"/api/v1/executions/{NAMESPACE}/load",
                        params={"labels": [f"load:{self.run}", f"phase:{phase}"]},
                    )
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.statuses[type(exc).__name__] += 1
                        self.errors.append(repr(exc))
                else:
                    with self._lock:
                        self.statuses[answer.status_code] += 1
                        if answer.status_code == 200:
                            self.accepted.append(Accepted(answer.json()["id"], phase, began))
                        else:
                            self.errors.append(f"{answer.status_code} {answer.text[:300]}")
                # the pace of the load, not a synchronisation
                self._stop.wait(max(0.0, interval - (time.monotonic() - began)))


# ---------------------------------------------------------------- what the topics show


@dataclass
class Seen:
    """What the `executions` topic showed of one execution."""

    flow_id: str
    labels: dict[str, str]
    schedule_date: datetime | None
    sequence: int = -1
    state: str = "CREATED"
    # distinct terminal outcomes: (state, end date) of every terminal snapshot
    terminal: set[tuple[str, str]] = field(default_factory=set)
    # the largest number of terminal entries one snapshot's history held
    terminal_entries: int = 0
    ended_at: float | None = None  # monotonic time the test process first saw it terminal


class Observer:
    """Reads `executions` and `logs` from their start on a thread of the test process."""

    def __init__(self, servers: str, prefix: str) -> None:
        from common.backends import create_queue
        from common.settings import Settings

        self.queue = create_queue(
            Settings(
                queue="kafka",
                kafka_bootstrap_servers=servers,
                kafka_topic_prefix=prefix + ".",
            )
        )
        self.subscription = self.queue.subscribe([EXECUTIONS, LOGS], prefix + "-fault-observer")
        self.executions: dict[str, Seen] = {}
        self.logs: dict[str, set[str]] = {}  # token -> distinct log records (indexer doc ids)
        self.read_errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.subscription.close()
        self.queue.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                records = self.subscription.poll(500, timeout=0.5)
            except Exception:  # noqa: BLE001 - the broker restarts during the suite
                self.read_errors += 1
                self._stop.wait(0.5)
                continue
            with self._lock:
                for record in records:
                    if record.value is None:
                        continue
                    if record.topic.endswith(EXECUTIONS):
                        self._execution(record.value)
                    else:
                        self._log(record.value)

    def _execution(self, value: bytes) -> None:
        execution = Execution.model_validate_json(value)
        if execution.namespace != NAMESPACE:
            return
        seen = self.executions.get(execution.id)
        if seen is None:
            seen = Seen(execution.flow_id, execution.label_map(), execution.schedule_date)
            self.executions[execution.id] = seen
        state = execution.state
        if state.current.terminal:
            end = state.end_date.isoformat() if state.end_date else ""
            seen.terminal.add((state.current.value, end))
            if seen.ended_at is None:
                seen.ended_at = time.monotonic()
        entries = sum(1 for h in state.histories if h.state.terminal)
        seen.terminal_entries = max(seen.terminal_entries, entries)
        if execution.sequence >= seen.sequence:
            seen.sequence = execution.sequence
            seen.state = state.current.value

    def _log(self, value: bytes) -> None:
        entry = LogEntry.model_validate_json(value)
        if entry.namespace != NAMESPACE or not entry.message.startswith(TOKEN):
            return
        doc_id = hashlib.sha256(entry.to_json()).hexdigest()  # the indexer's document id
        self.logs.setdefault(entry.message, set()).add(doc_id)

    # -- queries (under the lock: the reading thread writes)

    def snapshot(self) -> tuple[dict[str, Seen], dict[str, int]]:
        with self._lock:
            executions = {i: Seen(**vars(s)) for i, s in self.executions.items()}
            logs = {token: len(docs) for token, docs in self.logs.items()}
        return executions, logs

    def ended(self, ids: Iterable[str]) -> bool:
        with self._lock:
            return all(i in self.executions and self.executions[i].ended_at for i in ids)

    def ended_at(self, ids: Iterable[str]) -> dict[str, float]:
        with self._lock:
            return {
                i: ended
                for i in ids
                if i in self.executions and (ended := self.executions[i].ended_at) is not None
            }

    def phase_ids(self, run: str, phase: int) -> list[str]:
        """Every execution of the load asked for during ``phase`` (answered or not)."""
        with self._lock:
            return [
                i
                for i, s in self.executions.items()
                if s.labels.get("load") == run and s.labels.get("phase") == str(phase)
            ]

    def scheduled_after(self, moment: datetime) -> bool:
        """A `tick` execution for a date after ``moment`` (UTC) has ended."""
        with self._lock:
            return any(
                s.flow_id == "tick" and s.ended_at and s.schedule_date and s.schedule_date > moment
                for s in self.executions.values()
            )


# ---------------------------------------------------------------- the API side


def search_total(api: httpx.Client, params: dict[str, Any]) -> int | None:
    try:
        answer = api.get("/api/v1/executions/search", params={**params, "size": 1})
    except httpx.HTTPError:
        return None
    return int(answer.json()["total"]) if answer.status_code == 200 else None


def api_states(api: httpx.Client, run: str) -> dict[str, str]:
    """Every execution of the load through the search API, by id, with its state."""
    states: dict[str, str] = {}
    after: str | None = None
    while True:
        params: dict[str, Any] = {"labels": f"load:{run}", "size": 1000}
        if after:
            params["after"] = after
        answer = api.get("/api/v1/executions/search", params=params)
        answer.raise_for_status()
        page = answer.json()
        states.update({e["id"]: e["state"]["current"] for e in page["results"]})
        after = page.get("next")
        if not after or not page["results"]:
            return states


def indexed_tokens(api: httpx.Client) -> Counter[str]:
    """Every token log line of the namespace through the logs search API, counted."""
    counts: Counter[str] = Counter()
    after: str | None = None
    while True:
        params: dict[str, Any] = {"namespace": NAMESPACE, "size": 1000, "sort": "timestamp:asc"}
        if after:
            params["after"] = after
        answer = api.get("/api/v1/logs/search", params=params)
        answer.raise_for_status()
        page = answer.json()
        for entry in page["results"]:
            if entry["message"].startswith(TOKEN):
                counts[entry["message"]] += 1
        after = page.get("next")
        if not after or not page["results"]:
            return counts


# ---------------------------------------------------------------- counting


@dataclass
class Audit:
    accepted: int = 0
    ended: int = 0
    lost: list[str] = field(default_factory=list)
    unanswered: int = 0  # created by a request whose answer never came (e.g. webserver killed)
    duplicate_terminal: list[str] = field(default_factory=list)
    scheduled: int = 0
    duplicate_scheduled: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    logs_expected: int = 0
    logs_on_topic: int = 0
    logs_indexed: int = 0
    logs_missing: list[str] = field(default_factory=list)
    logs_doubled: list[str] = field(default_factory=list)
    final_states: Counter[str] = field(default_factory=Counter)


def audit(
    load: Load,
    observer: Observer,
    states_by_api: dict[str, str],
    tokens_indexed: Counter[str],
    settled_before: datetime,
    scope: set[str] | None = None,
    produced: dict[str, int] | None = None,
) -> Audit:
    """The counts of the report. ``settled_before``: schedule dates from the first one up to
    this moment must each have exactly one execution. ``scope`` and ``produced``: the executions
    whose log lines are checked, and their lines on the topic, as frozen when the test waited
    for them to be indexed (ticks keep running after the load stopped)."""
    executions, topic_logs = observer.snapshot()
    if produced is not None:
        topic_logs = produced
    result = Audit()
    accepted = load.ids()
    result.accepted = len(accepted)
    for execution_id in accepted:
        seen = executions.get(execution_id)
        state = states_by_api.get(execution_id)
        if seen is None or not seen.terminal or state not in TERMINAL:
            result.lost.append(f"{execution_id} (topic {seen and seen.state}, API {state})")
        else:
            result.ended += 1
    answered = set(accepted)
    result.unanswered = sum(
        1 for i, s in executions.items() if s.labels.get("load") == load.run and i not in answered
    )
    for execution_id, seen in executions.items():
        if len(seen.terminal) > 1 or seen.terminal_entries > 1:
            result.duplicate_terminal.append(f"{execution_id}: {sorted(seen.terminal)}")
        if seen.state in TERMINAL:
            result.final_states[f"{seen.flow_id} {seen.state}"] += 1
    # schedules: one execution per date, and every second from the first date on
    by_date: dict[datetime, list[str]] = {}
    for execution_id, seen in executions.items():
        if seen.flow_id == "tick" and seen.schedule_date is not None:
            by_date.setdefault(seen.schedule_date, []).append(execution_id)
    result.scheduled = len(by_date)
    result.duplicate_scheduled = [
        f"{d.isoformat()}: {ids}" for d, ids in by_date.items() if len(ids) > 1
    ]
    if by_date:
        date = min(by_date)
        while date < settled_before:
            if date not in by_date:
                result.gaps.append(date.isoformat())
            date += timedelta(seconds=1)
    # log lines: every ended execution's tokens were produced; each record indexed once
    for execution_id, seen in executions.items():
        if scope is not None and execution_id not in scope:
            continue
        if seen.state == "SUCCESS":
            tasks = LOAD_LOG_TASKS if seen.flow_id == "load" else ("log",)
            for task in tasks:
                result.logs_expected += 1
                token = f"{TOKEN}{execution_id}:{task}"
                if topic_logs.get(token, 0) == 0 or tokens_indexed.get(token, 0) == 0:
                    result.logs_missing.append(token)
    result.logs_on_topic = sum(topic_logs.values())
    result.logs_indexed = sum(tokens_indexed.get(token, 0) for token in topic_logs)
    missing = set(result.logs_missing)
    for token, produced in topic_logs.items():
        if tokens_indexed.get(token, 0) > produced:
            result.logs_doubled.append(f"{token}: {tokens_indexed[token]} for {produced}")
        elif tokens_indexed.get(token, 0) < produced and token not in missing:
            result.logs_missing.append(f"{token}: {tokens_indexed.get(token, 0)} for {produced}")
    return result


def wait_for(predicate: Any, timeout: float, what: str) -> float:
    """``wait_until`` that returns the seconds it took."""
    began = time.monotonic()
    wait_until(predicate, timeout, what, interval=0.5)
    return time.monotonic() - began
