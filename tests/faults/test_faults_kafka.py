"""Fault injection on the high-availability deployment (issue 13, item 5): real Kafka and
Elasticsearch, every component its own process, under steady load, one fault at a time with
recovery between; then the invariants are counted, printed and asserted:
0 executions lost, 0 duplicate terminal states, 0 duplicate scheduled runs (and no gap), every
log line indexed exactly once.

The deployment (``tests/faults/rig.py``): a broker and an Elasticsearch node of the module's own,
a webserver (``--no-indexer``), 2 executors, 2 workers, 2 schedulers, 2 indexers. The load: 2
executions/s of ``load`` (Return, two Log tasks each writing a token unique to its execution and
task) through the API, and ``tick``, a Schedule every second.

Each fault is its own test, in file order, on the module's one deployment, so that one fault
can be run alone while developing (``-k "executor or audit"``; the audit is the last test).
A fault's figures: how long it lasted; the worst latency (creation to terminal state on the
``executions`` topic) of the executions asked for during its window (the fault, and at least
15 s from its start: a kill is over at once, its effect is not); then from the fault's end how
long until every execution of its backlog (asked for before or during the window) had ended on
the ``executions`` topic, with a scheduled date past the fault run too, and until the search API
showed them all in a terminal state.

Kestra's own chaos tests were the model for the faults (kill of each component type, a worker
frozen past its heartbeat, the repository down): ``kestra-io/kestra``
``jdbc/src/test/.../JdbcRunnerTest`` and the Kafka runner's ``WorkerTest`` (a killed worker's
task resubmitted), and the invariants are Kestra's "no execution lost, none run twice".
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.faults import report
from tests.faults.rig import (
    DEAD_AFTER,
    TERMINAL,
    Load,
    Observer,
    Rig,
    api_states,
    audit,
    deploy_flows,
    indexed_tokens,
    search_total,
)
from tests.infra.elasticsearch import drop_indices
from tests.infra.processes import dump_stacks
from tests.infra.waiting import WaitTimeout, wait_until

pytestmark = [
    pytest.mark.faults,
    pytest.mark.kafka,
    pytest.mark.elasticsearch,
    pytest.mark.timeout(900),
]

RECOVERY_SECONDS = 240.0  # generous: seven other sessions share the two cores
ES_OUTAGE_SECONDS = 30.0
WINDOW_SECONDS = 15.0  # creations this long after a fault's start count as during the fault


@dataclass
class Suite:
    rig: Rig
    load: Load
    observer: Observer
    api: httpx.Client
    run: str
    rows: list[report.FaultRow] = field(default_factory=list)

    def inject(
        self,
        fault: str,
        action: Callable[[], str | None],
        after: Callable[[], None] | None = None,
        keep_down: str | None = None,
    ) -> report.FaultRow:
        """Runs ``action`` (the fault; returns when the fault is over, optionally a note), then
        waits for the backlog to end and be searchable; ``after`` restores the deployment
        (restarts the killed replica, ``keep_down`` until then) once recovered."""
        before = self.load.phase
        statuses = Counter(self.load.statuses)
        self.load.phase = before + 1  # creations during the fault
        began = time.monotonic()
        note = action() or ""
        over = time.monotonic()
        over_utc = datetime.now(UTC)
        # the window: creations during the fault and at least WINDOW_SECONDS after its start
        # (a kill is over at once, its effects are not): their latency is the fault's cost
        wait_until(
            lambda: time.monotonic() - began >= WINDOW_SECONDS,
            WINDOW_SECONDS + 5,
            "the end of the fault's window",
            interval=0.5,
        )
        self.load.phase = before + 2  # creations after the window: not part of the backlog
        # as an orchestrator would: components that exited during the fault start again (a
        # worker cut off from Kafka past worker_dead_after kills its tasks and exits, by design)
        exited = self.restart_exited(keep_down)
        if exited:
            note = f"{note}; exited during the fault and restarted: {', '.join(exited)}"
        row = report.FaultRow(fault, over - began, note=note.strip("; "))
        try:
            row.ended, row.searchable = self._recover(before, over, over_utc, fault)
        except WaitTimeout:
            row.note = f"**not recovered within {RECOVERY_SECONDS:.0f} s**; {row.note}"
            self.dump_stacks()
            self.rows.append(row)
            report.add_section("Kafka + Elasticsearch: faults", report.fault_table(self.rows))
            raise
        asked = self.load.asked(before + 1)
        latencies = [e - asked[i] for i, e in self.observer.ended_at(asked).items()]
        row.worst = max(latencies, default=None)
        refused = Counter(self.load.statuses)
        refused.subtract(statuses)
        row.refused = {str(k): v for k, v in refused.items() if k != 200 and v > 0}
        self.rows.append(row)
        report.add_section("Kafka + Elasticsearch: faults", report.fault_table(self.rows))
        if after is not None:
            after()
        return row

    def dump_stacks(self) -> None:
        """Every running component writes its threads' stacks to its log (SIGUSR1): what a
        component that stopped working waits on."""
        dump_stacks(list(self.rig.deployment.processes.values()))

    def restart_exited(self, keep_down: str | None = None) -> list[str]:
        exited = [
            f"{name} (exit {proc.returncode})"
            for name, proc in self.rig.deployment.processes.items()
            if not proc.running and name != keep_down
        ]
        for entry in exited:
            self.rig.restart(entry.split(" ")[0])
        return exited

    def _recover(
        self, before: int, over: float, over_utc: datetime, fault: str
    ) -> tuple[float, float]:
        phases = (before, before + 1)
        ended_at: list[float] = []

        def backlog() -> list[str]:
            ids = set(self.load.ids(before)) | set(self.load.ids(before + 1))
            for phase in phases:
                ids |= set(self.observer.phase_ids(self.run, phase))
            return sorted(ids)

        def ended() -> bool:
            done = self.observer.ended(backlog()) and self.observer.scheduled_after(over_utc)
            if done and not ended_at:
                ended_at.append(time.monotonic())
            return done

        def searchable() -> bool:
            if not ended():
                return False
            for phase in phases:
                expected = len(
                    set(self.load.ids(phase)) | set(self.observer.phase_ids(self.run, phase))
                )
                total = search_total(
                    self.api,
                    {"labels": [f"load:{self.run}", f"phase:{phase}"], "state": list(TERMINAL)},
                )
                if total != expected:
                    return False
            return True

        wait_until(
            searchable,
            RECOVERY_SECONDS,
            f"the backlog of '{fault}' to end and be searchable",
            interval=0.5,
            diagnose=lambda: self._stuck(backlog()),
        )
        return ended_at[0] - over, time.monotonic() - over

    def _stuck(self, ids: list[str]) -> str:
        executions, _ = self.observer.snapshot()
        stuck = {i: executions[i].state if i in executions else "not on the topic" for i in ids}
        stuck = {i: s for i, s in stuck.items() if s not in TERMINAL}
        first = dict(list(stuck.items())[:10])
        return f"not ended: {first} ({len(stuck)}); logs: {self.rig.deployment.logs()}"


@pytest.fixture(scope="module")
def suite(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    kafka = infra.kafka(1)  # the suite's own broker: it gets restarted
    es = infra.elasticsearch(1)  # the suite's own node: it gets stopped
    run = "f" + os.urandom(4).hex()
    base = tmp_path_factory.mktemp("faults")
    rig = Rig(kafka, es, base, run)
    load = Load(rig.url, run)
    api = httpx.Client(base_url=rig.url, timeout=30)
    observer: Observer | None = None
    try:
        rig.start()
        observer = Observer(kafka.bootstrap_servers, run)
        observer.start()
        deploy_flows(rig.url)
        load.start()
        wait_until(lambda: load.count() >= 10, 120, "the first executions of the load")
        yield Suite(rig, load, observer, api, run)
    finally:
        load.stop()
        api.close()
        if observer is not None:
            observer.stop()
        rig.stop()
        from common.repository.elasticsearch_client import create_client

        if es.nodes[0].process is not None and es.nodes[0].process.running:
            client = create_client(es.url)
            try:
                drop_indices(client, run + "_")
            finally:
                client.close()
        kafka.stop()
        es.stop()


def _killed(suite: Suite, name: str) -> Callable[[], str]:
    def action() -> str:
        suite.rig.process(name).kill()
        return ""

    return action


def _restarted(suite: Suite, name: str) -> Callable[[], None]:
    def after() -> None:
        suite.rig.restart(name)

    return after


@pytest.mark.parametrize("name", ["executor-1", "worker-1", "scheduler-1", "indexer-1"])
def test_kill_9_of_a_replica(suite: Suite, name: str) -> None:
    """kill -9 of one of the two replicas; the other takes its share over (recovery is measured
    with the killed one still down), then it is started again."""
    suite.inject(f"kill -9 {name}", _killed(suite, name), _restarted(suite, name), name)


def test_kill_9_of_the_webserver(suite: Suite) -> None:
    """The only webserver: creations fail until it is back (a request may be answered by no
    one and still create its execution: counted as unanswered, never lost)."""

    def action() -> str:
        suite.rig.process("webserver").kill()
        suite.rig.restart("webserver")
        return "restarted at once (single replica)"

    suite.inject("kill -9 webserver", action)


def test_elasticsearch_outage(suite: Suite) -> None:
    es = suite.rig.es
    pid = es.server_pid(1)
    assert pid is not None

    def action() -> str:
        os.kill(pid, signal.SIGSTOP)
        try:
            frozen = time.monotonic()
            # the load goes on meanwhile: wait for creations during the outage, then its end
            wait_until(
                lambda: time.monotonic() - frozen >= ES_OUTAGE_SECONDS,
                ES_OUTAGE_SECONDS + 5,
                "the outage's duration",
                interval=0.5,
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        return f"server JVM SIGSTOP {ES_OUTAGE_SECONDS:.0f} s, then SIGCONT"

    suite.inject("Elasticsearch outage", action)


def test_worker_frozen_past_the_dead_timeout(suite: Suite) -> None:
    name = "worker-2"
    proc = suite.rig.process(name)
    assert proc.pid is not None
    exit_code: list[int | None] = []

    def action() -> str:
        os.killpg(proc.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        try:
            frozen = time.monotonic()
            wait_until(
                lambda: time.monotonic() - frozen >= 2 * DEAD_AFTER,
                2 * DEAD_AFTER + 5,
                "twice the dead-worker timeout",
                interval=0.5,
            )
        finally:
            os.killpg(proc.pid, signal.SIGCONT)  # type: ignore[arg-type]
        return f"SIGSTOP {2 * DEAD_AFTER} s (dead after {DEAD_AFTER} s), then SIGCONT"

    def after() -> None:
        # a worker that could not heartbeat past the timeout kills its tasks and exits
        wait_until(lambda: not proc.running, 60, f"the frozen {name} to exit after SIGCONT")
        exit_code.append(proc.returncode)
        suite.rig.restart(name)

    row = suite.inject(f"SIGSTOP {name}", action, after, name)
    row.note += f"; it exited with code {exit_code[0]} after SIGCONT and was restarted"
    report.add_section("Kafka + Elasticsearch: faults", report.fault_table(suite.rows))


# The broker restart comes last of the faults: on the full sequence it wedges the executors
# (notes/issue-13.md, "fault injection"), and the faults after it would measure that instead.
def test_broker_restart(suite: Suite) -> None:
    kafka = suite.rig.kafka
    node = kafka.nodes[0].node_id

    def action() -> str:
        kafka.stop_node(node)
        kafka.restart_node(node)
        return "single broker: SIGTERM, then started again"

    suite.inject("broker restart", action)


def test_audit_the_invariants(suite: Suite) -> None:
    """Last: stop the load, let everything end and be indexed, count, print, assert."""
    suite.load.stop()
    stopped_utc = datetime.now(UTC)
    accepted = suite.load.ids()

    def all_ended() -> bool:
        executions, _ = suite.observer.snapshot()
        ticks = [
            i
            for i, s in executions.items()
            if s.flow_id == "tick" and s.schedule_date and s.schedule_date <= stopped_utc
        ]
        return suite.observer.ended(accepted + ticks) and suite.observer.scheduled_after(
            stopped_utc
        )

    unsettled: list[str] = []

    def settle(predicate: Callable[[], Any], what: str) -> Any:
        try:
            # once something did not settle, the next waits are short: the table still comes
            return wait_until(predicate, 30 if unsettled else RECOVERY_SECONDS, what, interval=2)
        except WaitTimeout:
            unsettled.append(what)
            suite.dump_stacks()
            return None

    settle(all_ended, "every accepted execution to end")
    expected = {
        i for i, s in suite.observer.snapshot()[0].items() if s.labels.get("load") == suite.run
    }

    def searchable() -> bool:
        total = search_total(suite.api, {"labels": f"load:{suite.run}", "state": list(TERMINAL)})
        return total == len(expected)

    settle(searchable, "every execution searchable in its final state")

    # the log lines checked: those of the load and of the dates up to the stop, frozen now that
    # they ended (the schedule keeps running: a later tick's line may not be indexed yet)
    scope = {
        i
        for i, s in suite.observer.snapshot()[0].items()
        if s.labels.get("load") == suite.run
        or (s.flow_id == "tick" and s.schedule_date and s.schedule_date <= stopped_utc)
    }

    def produced_in_scope() -> dict[str, int]:
        _, produced = suite.observer.snapshot()
        return {t: n for t, n in produced.items() if t.split(":")[1] in scope}

    def logs_indexed() -> Counter[str] | None:
        produced = produced_in_scope()
        try:
            indexed = indexed_tokens(suite.api)
        except httpx.HTTPError:
            return None
        return indexed if all(indexed.get(t, 0) >= n for t, n in produced.items()) else None

    tokens = settle(logs_indexed, "every log line indexed") or indexed_tokens(suite.api)
    produced = produced_in_scope()
    counted = audit(
        suite.load,
        suite.observer,
        api_states(suite.api, suite.run),
        tokens,
        stopped_utc,
        scope=scope,
        produced=produced,
    )
    counts: list[tuple[str, object, object]] = [
        ("executions accepted (API answered 200)", counted.accepted, "—"),
        ("executions ended", counted.ended, counted.accepted),
        ("executions lost (accepted, never terminal or not in the API)", len(counted.lost), 0),
        ("executions created without an answer (request cut by a fault)", counted.unanswered, "—"),
        ("duplicate terminal states", len(counted.duplicate_terminal), 0),
        ("scheduled dates run", counted.scheduled, "—"),
        ("duplicate scheduled runs", len(counted.duplicate_scheduled), 0),
        ("schedule gaps (dates without a run)", len(counted.gaps), 0),
        (
            "log lines expected (token of every task of every SUCCESS execution)",
            counted.logs_expected,
            "—",
        ),
        ("log lines produced (distinct records on the logs topic)", counted.logs_on_topic, "—"),
        ("log lines indexed (logs search API)", counted.logs_indexed, counted.logs_on_topic),
        ("log lines missing", len(counted.logs_missing), 0),
        ("log lines indexed more than once", len(counted.logs_doubled), 0),
    ]
    states = ", ".join(f"{k}: {v}" for k, v in sorted(counted.final_states.items()))
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(suite.load.statuses.items(), key=str))
    report.add_section(
        "Kafka + Elasticsearch: invariants",
        report.count_table(counts)
        + f"\n\nFinal states: {states}. Creation answers: {statuses}."
        + f" Observer read errors (broker restart): {suite.observer.read_errors}."
        + (
            f" **Did not settle within {RECOVERY_SECONDS:.0f} s: {unsettled}.**"
            if unsettled
            else ""
        ),
    )
    assert counted.lost == [], counted.lost[:10]
    assert counted.duplicate_terminal == [], counted.duplicate_terminal[:10]
    assert counted.duplicate_scheduled == [], counted.duplicate_scheduled[:10]
    assert counted.gaps == [], counted.gaps[:20]
    assert counted.logs_missing == [], counted.logs_missing[:10]
    assert counted.logs_doubled == [], counted.logs_doubled[:10]
    assert counted.ended == counted.accepted
