"""The repository contract, written once and run against every backend.

A backend's test module subclasses ``RepositoryContract`` and provides a ``repositories``
fixture returning fresh, empty ``Repositories``. Backends that index asynchronously (for
example Elasticsearch) override ``refresh`` to make writes visible to searches.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from common.errors import QueryError
from common.models.execution import Execution, Label, StateEntry, StateInfo
from common.models.messages import LogEntry, MetricEntry, WorkerHeartbeat
from common.models.state import State
from common.repository.base import (
    MAX_BUCKETS,
    MAX_PAGE_SIZE,
    MAX_RESULT_WINDOW,
    ExecutionQuery,
    FlowRecord,
    Interval,
    LogQuery,
    Repositories,
    interpolated,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

SOURCE_A = "id: hello\nnamespace: company.team\ntasks: []\n"
SOURCE_B = "id: hello\nnamespace: company.team\ndescription: changed\ntasks: []\n"


def make_execution(
    execution_id: str,
    *,
    namespace: str = "company.team",
    flow_id: str = "hello",
    state: State = State.CREATED,
    start: datetime = T0,
    labels: dict[str, str] | None = None,
    sequence: int = 0,
    tenant_id: str | None = None,
    parent_id: str | None = None,
    took: timedelta = timedelta(seconds=5),
) -> Execution:
    histories = [StateEntry(state=State.CREATED, date=start)]
    if state != State.CREATED:
        histories.append(StateEntry(state=state, date=start + took))
    return Execution(
        id=execution_id,
        namespace=namespace,
        flow_id=flow_id,
        tenant_id=tenant_id,
        state=StateInfo(current=state, histories=histories),
        labels=[Label(key=k, value=v) for k, v in (labels or {}).items()],
        sequence=sequence,
        parent_id=parent_id,
    )


STATES = (State.CREATED, State.RUNNING, State.SUCCESS, State.FAILED, State.WARNING, State.KILLED)


def varied_executions(count: int, seed: int = 7) -> list[Execution]:
    """Executions over three days in two tenants, three flows and six states, with many equal
    start dates (ties for the sort) and durations to the microsecond."""
    rng = random.Random(seed)
    flows = [("company.team", "hello"), ("company.team", "bye"), ("company.other", "hello")]
    executions = []
    for i in range(count):
        namespace, flow_id = rng.choice(flows)
        executions.append(
            make_execution(
                f"v{i:04d}",
                namespace=namespace,
                flow_id=flow_id,
                state=rng.choice(STATES),
                start=T0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60, 90)),
                labels={"team": rng.choice(["data", "ops"])},
                tenant_id=rng.choice([None, None, None, "other"]),
                took=timedelta(microseconds=rng.randrange(1, 3_600_000_000)),
            )
        )
    return executions


def by_hand(executions: list[Execution], tenant: str = "main", **match: str) -> list[Execution]:
    """The executions a query with these filters should match, computed without the backend."""
    return [
        e
        for e in executions
        if (e.tenant_id or "main") == tenant
        and all(getattr(e, field) == value for field, value in match.items())
    ]


def flow_record(source: str = SOURCE_A, revision: int = 1, **kw: object) -> FlowRecord:
    values: dict[str, object] = {
        "tenant_id": "main",
        "namespace": "company.team",
        "id": "hello",
        "revision": revision,
        "source": source,
        "updated": T0,
    }
    values.update(kw)
    return FlowRecord(**values)  # type: ignore[arg-type]


class RepositoryContract:
    """Behaviour every repository backend must show."""

    def refresh(self, repositories: Repositories) -> None:
        """Make previous writes visible to reads (no-op for synchronous backends)."""

    # ------------------------------------------------------------------ flows

    def test_flow_revisions(self, repositories: Repositories) -> None:
        flows = repositories.flows
        flows.save(flow_record(SOURCE_A, 1))
        self.refresh(repositories)
        assert flows.get("main", "company.team", "hello").revision == 1  # type: ignore[union-attr]
        flows.save(flow_record(SOURCE_A, 2))  # unchanged source keeps its revision
        self.refresh(repositories)
        assert flows.get("main", "company.team", "hello").revision == 1  # type: ignore[union-attr]
        flows.save(flow_record(SOURCE_B, 2))
        self.refresh(repositories)
        latest = flows.get("main", "company.team", "hello")
        assert latest is not None and latest.revision == 2 and latest.source == SOURCE_B
        assert [r.revision for r in flows.revisions("main", "company.team", "hello")] == [1, 2]
        first = flows.get("main", "company.team", "hello", revision=1)
        assert first is not None and first.source == SOURCE_A

    def test_flow_changed_source_gets_next_revision_even_if_asked_lower(
        self, repositories: Repositories
    ) -> None:
        flows = repositories.flows
        flows.save(flow_record(SOURCE_A, 1))
        flows.save(flow_record(SOURCE_B, 1))
        self.refresh(repositories)
        latest = flows.get("main", "company.team", "hello")
        assert latest is not None and latest.revision == 2

    def test_flow_find_and_delete(self, repositories: Repositories) -> None:
        flows = repositories.flows
        flows.save(flow_record(SOURCE_A, 1))
        flows.save(flow_record("id: other\n", 1, namespace="company.team.sub", id="other"))
        flows.save(flow_record("id: x\n", 1, namespace="companyx", id="x"))
        flows.save(flow_record("id: y\n", 1, tenant_id="other", id="y"))
        self.refresh(repositories)
        found = flows.find("main", namespace="company")
        assert [(f.namespace, f.id) for f in found] == [
            ("company.team", "hello"),
            ("company.team.sub", "other"),
        ]
        assert [f.id for f in flows.find("main", q="oth")] == ["other"]
        assert len(flows.find("main")) == 3
        flows.delete("main", "company.team", "hello")
        self.refresh(repositories)
        assert flows.get("main", "company.team", "hello") is None
        assert [f.id for f in flows.find("main", namespace="company")] == ["other"]
        # a re-created flow continues the revision numbers
        flows.save(flow_record(SOURCE_A, 1))
        self.refresh(repositories)
        again = flows.get("main", "company.team", "hello")
        assert again is not None and again.revision == 2

    def test_flow_unknown(self, repositories: Repositories) -> None:
        assert repositories.flows.get("main", "nope", "nope") is None
        assert repositories.flows.revisions("main", "nope", "nope") == []

    # ------------------------------------------------------------------ executions

    def test_execution_save_and_get(self, repositories: Repositories) -> None:
        ex = make_execution("e1", labels={"team": "data"})
        assert repositories.executions.save(ex) is True
        self.refresh(repositories)
        got = repositories.executions.get("main", "e1")
        assert got is not None and got.id == "e1" and got.label_map() == {"team": "data"}
        assert repositories.executions.get("main", "missing") is None
        assert repositories.executions.get("other", "e1") is None

    def test_execution_keeps_highest_sequence(self, repositories: Repositories) -> None:
        repo = repositories.executions
        assert repo.save(make_execution("e1", state=State.RUNNING, sequence=5))
        assert not repo.save(make_execution("e1", state=State.CREATED, sequence=2))
        self.refresh(repositories)
        got = repo.get("main", "e1")
        assert got is not None and got.state.current == State.RUNNING
        assert repo.save(make_execution("e1", state=State.SUCCESS, sequence=6))
        self.refresh(repositories)
        got = repo.get("main", "e1")
        assert got is not None and got.state.current == State.SUCCESS

    def test_execution_search(self, repositories: Repositories) -> None:
        repo = repositories.executions
        repo.save(make_execution("a1", state=State.SUCCESS, labels={"env": "prod"}))
        repo.save(
            make_execution(
                "a2",
                state=State.FAILED,
                start=T0 + timedelta(hours=1),
                labels={"env": "dev"},
            )
        )
        repo.save(
            make_execution(
                "b1", namespace="company.team.sub", flow_id="other", start=T0 + timedelta(days=1)
            )
        )
        repo.save(make_execution("c1", namespace="companyx", flow_id="hello"))
        repo.save(make_execution("t1", tenant_id="other"))
        self.refresh(repositories)

        def ids(**kw: object) -> list[str]:
            return [e.id for e in repo.search(ExecutionQuery(**kw)).results]  # type: ignore[arg-type]

        assert ids() == ["b1", "a2", "c1", "a1"] or ids() == ["b1", "a2", "a1", "c1"]
        assert ids(namespace="company") == ["b1", "a2", "a1"]
        assert ids(namespace="company", flow_id="hello") == ["a2", "a1"]
        assert ids(states=[State.FAILED, State.SUCCESS]) == ["a2", "a1"]
        assert ids(labels={"env": "prod"}) == ["a1"]
        assert ids(labels={"env": "prod", "x": "y"}) == []
        assert ids(start_date=T0 + timedelta(minutes=30), end_date=T0 + timedelta(hours=2)) == [
            "a2"
        ]
        assert ids(q="OTHER") == ["b1"]
        assert ids(q="env:dev") == ["a2"]
        assert ids(tenant_id="other") == ["t1"]
        assert ids(namespace="company", sort_desc=False) == ["a1", "a2", "b1"]

    def test_execution_search_paging(self, repositories: Repositories) -> None:
        repo = repositories.executions
        for i in range(7):
            repo.save(make_execution(f"p{i}", start=T0 + timedelta(minutes=i)))
        self.refresh(repositories)
        first = repo.search(ExecutionQuery(size=3, page=1))
        third = repo.search(ExecutionQuery(size=3, page=3))
        assert first.total == 7 and [e.id for e in first.results] == ["p6", "p5", "p4"]
        assert [e.id for e in third.results] == ["p0"]

    def test_execution_search_by_parent(self, repositories: Repositories) -> None:
        repo = repositories.executions
        repo.save(make_execution("root"))
        repo.save(make_execution("child", parent_id="root"))
        self.refresh(repositories)
        assert [e.id for e in repo.search(ExecutionQuery(parent_id="root")).results] == ["child"]

    def test_execution_delete(self, repositories: Repositories) -> None:
        repo = repositories.executions
        repo.save(make_execution("d1", sequence=1))
        self.refresh(repositories)
        repo.delete("main", "d1")
        self.refresh(repositories)
        assert repo.get("main", "d1") is None
        assert repo.search(ExecutionQuery()).total == 0

    def test_execution_dates_keep_their_microseconds(self, repositories: Repositories) -> None:
        repo = repositories.executions
        for i in range(3):  # one microsecond apart, ids against the time order
            repo.save(make_execution(f"m{2 - i}", start=T0 + timedelta(microseconds=i)))
        self.refresh(repositories)

        def ids(**kw: object) -> list[str]:
            return [e.id for e in repo.search(ExecutionQuery(**kw)).results]  # type: ignore[arg-type]

        assert ids() == ["m0", "m1", "m2"]
        assert ids(sort_desc=False) == ["m2", "m1", "m0"]
        one = T0 + timedelta(microseconds=1)
        assert ids(start_date=one, end_date=one) == ["m1"]
        assert ids(start_date=one) == ["m0", "m1"]

    def test_executions_without_a_start_date_sort_last_then_first(
        self, repositories: Repositories
    ) -> None:
        repo = repositories.executions
        for i in range(3):
            repo.save(make_execution(f"s{i}", start=T0 + timedelta(minutes=i)))
        for i in range(3):  # no state history yet: no start date
            undated = make_execution(f"u{i}")
            repo.save(undated.model_copy(update={"state": StateInfo(histories=[])}))
        self.refresh(repositories)
        for desc, expected in (
            (True, ["s2", "s1", "s0", "u2", "u1", "u0"]),
            (False, ["u0", "u1", "u2", "s0", "s1", "s2"]),
        ):
            assert self._walk(repositories, ExecutionQuery(size=2, sort_desc=desc)) == expected
            assert self._walk(repositories, ExecutionQuery(size=4, sort_desc=desc)) == expected

    def test_execution_text_search_takes_wildcards_literally(
        self, repositories: Repositories
    ) -> None:
        repo = repositories.executions
        for execution_id in ("a_b", "axb", "a%b", "a*b", "a?b"):
            repo.save(make_execution(execution_id))
        self.refresh(repositories)

        def ids(q: str) -> list[str]:
            return sorted(e.id for e in repo.search(ExecutionQuery(q=q)).results)

        assert ids("a_b") == ["a_b"]
        assert ids("a%b") == ["a%b"]
        assert ids("a*b") == ["a*b"]
        assert ids("a?b") == ["a?b"]
        assert ids("A") == ["a%b", "a*b", "a?b", "a_b", "axb"]  # case-insensitive

    def test_execution_text_search_looks_in_inputs(self, repositories: Repositories) -> None:
        repo = repositories.executions
        with_inputs = make_execution("i1").model_copy(
            update={"inputs": {"customer": "ACME Corp", "count": 42, "nested": {"x": "deep"}}}
        )
        repo.save(with_inputs)
        repo.save(make_execution("i2"))
        self.refresh(repositories)

        def ids(q: str) -> list[str]:
            return [e.id for e in repo.search(ExecutionQuery(q=q)).results]

        assert ids("acme corp") == ["i1"]
        assert ids("count:42") == ["i1"]
        assert ids("deep") == []  # nested values are not searched

    def test_a_deleted_execution_is_not_brought_back_by_a_late_snapshot(
        self, repositories: Repositories
    ) -> None:
        repo = repositories.executions
        repo.save(make_execution("d1", state=State.RUNNING, sequence=3))
        repo.delete("main", "d1")
        repo.save(make_execution("d1", state=State.SUCCESS, sequence=4))  # the indexer, late
        self.refresh(repositories)
        assert repo.get("main", "d1") is None
        assert repo.search(ExecutionQuery()).total == 0
        assert repo.count_by_state(ExecutionQuery()) == {}

    def test_flow_tenants(self, repositories: Repositories) -> None:
        assert repositories.flows.tenants() == []
        repositories.flows.save(flow_record())
        repositories.flows.save(flow_record(tenant_id="acme"))
        self.refresh(repositories)
        assert sorted(repositories.flows.tenants()) == ["acme", "main"]

    # ------------------------------------------------------------------ logs / metrics / workers

    def _log(self, level: str, i: int, task_run_id: str = "tr1") -> LogEntry:
        return LogEntry(
            namespace="company.team",
            flow_id="hello",
            execution_id="e1",
            task_run_id=task_run_id,
            timestamp=T0 + timedelta(seconds=i),
            level=level,  # type: ignore[arg-type]
            message=f"{level} {i}",
        )

    def test_logs(self, repositories: Repositories) -> None:
        logs = [
            self._log("TRACE", 0),
            self._log("DEBUG", 1),
            self._log("INFO", 2),
            self._log("WARN", 3, "tr2"),
            self._log("ERROR", 4),
        ]
        repositories.logs.save_many(logs)
        repositories.logs.save_many(logs[:2])  # redelivered: no duplicates
        self.refresh(repositories)
        found = repositories.logs.find("main", "e1")
        assert [entry.message for entry in found] == [entry.message for entry in logs]
        warn = repositories.logs.find("main", "e1", min_level="WARN")
        assert [entry.level for entry in warn] == ["WARN", "ERROR"]
        assert [e.message for e in repositories.logs.find("main", "e1", task_run_id="tr2")] == [
            "WARN 3"
        ]
        assert repositories.logs.find("main", "other") == []

    def test_logs_of_one_instant_keep_their_insertion_order(
        self, repositories: Repositories
    ) -> None:
        logs = [
            LogEntry(
                namespace="company.team",
                flow_id="hello",
                execution_id="e1",
                timestamp=T0,
                message=f"{9 - i} at the same time",
            )
            for i in range(10)
        ]
        repositories.logs.save_many(logs[:6])
        repositories.logs.save_many(logs[3:])  # redelivered overlap: neither doubled nor moved
        self.refresh(repositories)
        messages = [e.message for e in logs]
        assert [e.message for e in repositories.logs.find("main", "e1")] == messages
        newest = repositories.logs.search(LogQuery(size=4))
        assert newest.total == 10
        assert [e.message for e in newest.results] == messages[::-1][:4]
        rest = repositories.logs.search(LogQuery(size=10, after=newest.next))
        assert [e.message for e in rest.results] == messages[::-1][4:]

    def test_log_search_across_executions(self, repositories: Repositories) -> None:
        def entry(i: int, **fields: str) -> LogEntry:
            values = {
                "namespace": "company.team",
                "flow_id": "hello",
                "execution_id": f"e{i % 3}",
                "task_id": "a" if i % 2 else "b",
                "level": "INFO",
                "message": f"line {i}",
            } | fields
            return LogEntry(timestamp=T0 + timedelta(seconds=i), **values)  # type: ignore[arg-type]

        logs = [entry(i) for i in range(20)]
        logs += [
            entry(20, namespace="company.other", flow_id="bye", message="Disk FULL on host"),
            entry(21, level="ERROR", message="boom"),
            entry(22, namespace="companyx", message="not under company"),
        ]
        repositories.logs.save_many(logs)
        self.refresh(repositories)
        search = repositories.logs.search

        newest = search(LogQuery(size=5))
        assert newest.total == 23
        assert [e.message for e in newest.results] == [
            "not under company",
            "boom",
            "Disk FULL on host",
            "line 19",
            "line 18",
        ]
        oldest = search(LogQuery(size=2, sort_desc=False))
        assert [e.message for e in oldest.results] == ["line 0", "line 1"]
        assert search(LogQuery(namespace="company")).total == 22  # prefix, not `companyx`
        assert [e.flow_id for e in search(LogQuery(namespace="company.other")).results] == ["bye"]
        assert search(LogQuery(namespace="company.team", flow_id="hello")).total == 21
        assert [e.message for e in search(LogQuery(min_level="WARN")).results] == ["boom"]
        assert search(LogQuery(task_id="a")).total == 11
        assert search(LogQuery(execution_id="e0")).total == 8
        assert [e.message for e in search(LogQuery(q="disk full")).results] == ["Disk FULL on host"]
        window = search(
            LogQuery(start_date=T0 + timedelta(seconds=5), end_date=T0 + timedelta(seconds=7))
        )
        assert [e.message for e in window.results] == ["line 7", "line 6", "line 5"]
        assert search(LogQuery(tenant_id="other")).total == 0

        # numbered pages and the cursor agree, and the cursor walks to the end
        seen: list[str] = []
        page = search(LogQuery(size=7))
        assert page.results == search(LogQuery(size=7, page=1)).results
        seen += [e.message for e in page.results]
        while page.next is not None:
            page = search(LogQuery(size=7, after=page.next))
            seen += [e.message for e in page.results]
        assert seen == [e.message for e in sorted(logs, key=lambda e: e.timestamp, reverse=True)]
        with pytest.raises(QueryError):
            search(LogQuery(after="garbage"))
        with pytest.raises(QueryError):
            search(LogQuery(size=MAX_PAGE_SIZE + 1))

    def test_purging_logs_and_metrics(self, repositories: Repositories) -> None:
        """What ``PurgeLogs`` / ``PurgeExecutions`` delete, and the counts they output."""
        from common.models.messages import MetricEntry
        from common.repository.base import LogPurge

        def entry(i: int, **fields: str) -> LogEntry:
            values = {
                "namespace": "company.team",
                "flow_id": "hello",
                "execution_id": f"e{i % 2}",
                "level": "INFO",
                "message": f"line {i}",
            } | fields
            return LogEntry(timestamp=T0 + timedelta(seconds=i), **values)  # type: ignore[arg-type]

        repositories.logs.save_many(
            [entry(i) for i in range(6)]
            + [
                entry(6, level="WARN"),
                entry(7, level="ERROR"),
                entry(8, namespace="company.team.sub"),
                entry(9, namespace="companyx"),
                entry(10, namespace="company.team", flow_id="other"),
            ]
        )
        metrics = [
            MetricEntry(
                namespace="company.team",
                flow_id="hello",
                execution_id=f"e{i % 2}",
                name="n",
                value=i,
                timestamp=T0 + timedelta(seconds=i),
            )
            for i in range(4)
        ]
        repositories.metrics.save_many(metrics)
        self.refresh(repositories)
        delete = repositories.logs.delete
        assert delete(LogPurge(tenant_id="other")) == 0
        assert delete(LogPurge(namespace="company.team", levels=["WARN", "ERROR"])) == 2
        assert delete(LogPurge(end_date=T0 + timedelta(seconds=1))) == 2  # lines 0 and 1
        # with a flow, its namespace exactly; without, the namespace and below (not companyx)
        assert delete(LogPurge(namespace="company.team", flow_id="hello", execution_id="e0")) == 2
        assert delete(LogPurge(namespace="company", start_date=T0 + timedelta(seconds=8))) == 2
        assert [e.message for e in repositories.logs.search(LogQuery(size=10)).results] == [
            "line 9",
            "line 5",
            "line 3",
        ]
        assert repositories.metrics.delete("main", "e0") == 2
        assert repositories.metrics.delete("main", "e0") == 0
        assert [m.value for m in repositories.metrics.find("main", "e1")] == [1, 3]

    def test_trigger_states(self, repositories: Repositories) -> None:
        from common.models.trigger import TriggerState

        def state(namespace: str, trigger_id: str, minutes: int) -> TriggerState:
            return TriggerState(
                namespace=namespace,
                flow_id="hello",
                trigger_id=trigger_id,
                next_execution_date=T0 + timedelta(minutes=minutes + 1),
                date=T0 + timedelta(minutes=minutes),
            )

        repo = repositories.triggers
        repo.save_many([state("company.team", "a", 5), state("companyx", "b", 0)])
        repo.save_many([state("company.team", "a", 1)])  # older: ignored
        self.refresh(repositories)
        found = repo.find("main", "company")
        assert [(s.trigger_id, s.date) for s in found] == [("a", T0 + timedelta(minutes=5))]
        assert len(repo.find("main")) == 2
        assert repo.find("main", "company.team", "other") == []
        repo.delete_many([found[0].uid])
        self.refresh(repositories)
        assert [s.trigger_id for s in repo.find("main")] == ["b"]

    def test_metrics(self, repositories: Repositories) -> None:
        metric = MetricEntry(
            namespace="company.team",
            flow_id="hello",
            execution_id="e1",
            name="rows",
            value=3,
            timestamp=T0,
        )
        repositories.metrics.save_many([metric, metric])
        self.refresh(repositories)
        found = repositories.metrics.find("main", "e1")
        assert len(found) == 1 and found[0].name == "rows"

    def test_workers(self, repositories: Repositories) -> None:
        def beat(worker_id: str, running: int, at: datetime) -> WorkerHeartbeat:
            return WorkerHeartbeat(
                worker_id=worker_id, hostname="h", threads=4, running=running, date=at
            )

        repositories.workers.save(beat("w1", 1, T0))
        repositories.workers.save(beat("w1", 3, T0 + timedelta(seconds=2)))
        repositories.workers.save(beat("w1", 2, T0 + timedelta(seconds=1)))  # older: ignored
        repositories.workers.save(beat("w2", 0, T0))
        self.refresh(repositories)
        workers = {w.worker_id: w for w in repositories.workers.all()}
        assert set(workers) == {"w1", "w2"} and workers["w1"].running == 3

    # ------------------------------------------------------------------ bounded pages

    def test_page_size_is_bounded(self, repositories: Repositories) -> None:
        repo = repositories.executions
        for size in (0, MAX_PAGE_SIZE + 1):
            with pytest.raises(QueryError) as caught:
                repo.search(ExecutionQuery(size=size))
            assert [p.path for p in caught.value.problems] == ["size"]
        assert repo.search(ExecutionQuery(size=MAX_PAGE_SIZE)).results == []

    def test_numbered_pages_stop_at_the_result_window(self, repositories: Repositories) -> None:
        repo = repositories.executions
        last = MAX_RESULT_WINDOW // 100
        assert repo.search(ExecutionQuery(size=100, page=last)).results == []
        for page in (0, last + 1):
            with pytest.raises(QueryError) as caught:
                repo.search(ExecutionQuery(size=100, page=page))
            assert [p.path for p in caught.value.problems] == ["page"]

    def _walk(self, repositories: Repositories, query: ExecutionQuery) -> list[str]:
        """Every id of ``query`` following the cursors from its first page."""
        seen: list[str] = []
        page = repositories.executions.search(query)
        for _ in range(MAX_RESULT_WINDOW):
            seen += [e.id for e in page.results]
            assert len(page.results) == query.size or page.next is None
            if page.next is None:
                return seen
            page = repositories.executions.search(replace(query, after=page.next))
        raise AssertionError(f"the cursor never ends (after {len(seen)} results)")

    def test_cursor_visits_every_execution_once_despite_equal_sort_keys(
        self, repositories: Repositories
    ) -> None:
        executions = varied_executions(230)
        for execution in executions:
            repositories.executions.save(execution)
        self.refresh(repositories)
        mine = by_hand(executions)
        assert len({e.state.start_date for e in mine}) < len(mine) / 2  # ties are the rule

        def expected(desc: bool, subset: list[Execution]) -> list[str]:
            keyed = sorted(subset, key=lambda e: (e.state.start_date, e.id), reverse=desc)
            return [e.id for e in keyed]

        for desc in (True, False):
            walked = self._walk(repositories, ExecutionQuery(size=7, sort_desc=desc))
            assert walked == expected(desc, mine)
            team = self._walk(repositories, ExecutionQuery(size=4, namespace="company.team"))
            assert team == expected(True, [e for e in mine if e.namespace == "company.team"])
        # a full last page has no next cursor: nothing is fetched twice or missed at the end
        exact = ExecutionQuery(size=len(mine))
        assert repositories.executions.search(exact).next is None

    def test_cursor_continues_a_numbered_page(self, repositories: Repositories) -> None:
        repo = repositories.executions
        for i in range(9):
            repo.save(make_execution(f"p{i}", start=T0 + timedelta(minutes=i // 3)))
        self.refresh(repositories)
        second = repo.search(ExecutionQuery(size=2, page=2))
        assert second.total == 9 and second.next is not None
        rest = repo.search(ExecutionQuery(size=5, after=second.next))
        assert [e.id for e in second.results] == ["p6", "p5"]
        assert [e.id for e in rest.results] == ["p4", "p3", "p2", "p1", "p0"]
        assert rest.next is None
        assert rest.total == 9

    def test_bad_cursors_are_refused(self, repositories: Repositories) -> None:
        repo = repositories.executions
        for i in range(3):
            repo.save(make_execution(f"p{i}", start=T0 + timedelta(minutes=i)))
        self.refresh(repositories)
        cursor = repo.search(ExecutionQuery(size=1)).next
        assert cursor is not None
        for query in (
            ExecutionQuery(after="not a cursor"),
            ExecutionQuery(after=cursor, sort_desc=False),
            ExecutionQuery(after=cursor, page=2),
        ):
            with pytest.raises(QueryError) as caught:
                repo.search(query)
            assert [p.path for p in caught.value.problems] in (["after"], ["page"])

    # ------------------------------------------------------------------ aggregations

    def test_counts_by_state_equal_counts_by_hand(self, repositories: Repositories) -> None:
        executions = varied_executions(150)
        for execution in executions:
            repositories.executions.save(execution)
        self.refresh(repositories)
        repo = repositories.executions
        cases: list[tuple[ExecutionQuery, list[Execution]]] = [
            (ExecutionQuery(), by_hand(executions)),
            (ExecutionQuery(tenant_id="other"), by_hand(executions, "other")),
            (ExecutionQuery(flow_id="hello"), by_hand(executions, flow_id="hello")),
            (
                ExecutionQuery(namespace="company.team", labels={"team": "ops"}),
                [
                    e
                    for e in by_hand(executions, namespace="company.team")
                    if e.label_map() == {"team": "ops"}
                ],
            ),
            (
                ExecutionQuery(start_date=T0 + timedelta(days=1), end_date=T0 + timedelta(days=2)),
                [
                    e
                    for e in by_hand(executions)
                    if T0 + timedelta(days=1)
                    <= e.state.start_date  # type: ignore[operator]
                    <= T0 + timedelta(days=2)
                ],
            ),
        ]
        for query, matching in cases:
            assert matching, query
            assert repo.count_by_state(query) == Counter(e.state.current for e in matching)
            assert repo.search(query).total == len(matching)

    def test_histograms_equal_buckets_by_hand(self, repositories: Repositories) -> None:
        executions = varied_executions(200)
        for execution in executions:
            repositories.executions.save(execution)
        self.refresh(repositories)
        start, end = T0 - timedelta(hours=3), T0 + timedelta(days=3)
        mine = by_hand(executions)
        for interval in Interval:
            expected: dict[tuple[datetime, State], list[Execution]] = defaultdict(list)
            for e in mine:
                started = e.state.start_date
                assert started is not None
                if interval is Interval.DAY:
                    key = started.replace(hour=0, minute=0, second=0, microsecond=0)
                else:
                    key = started.replace(minute=0, second=0, microsecond=0)
                expected[(key, e.state.current)].append(e)
            buckets = repositories.executions.histogram(
                ExecutionQuery(start_date=start, end_date=end), interval
            )
            assert [(b.start, b.state) for b in buckets] == sorted(expected)
            for bucket in buckets:
                group = expected[(bucket.start, bucket.state)]
                assert bucket.count == len(group)
                seconds = [
                    (e.state.end_date - e.state.start_date).total_seconds()  # type: ignore[operator]
                    for e in group
                    if e.state.end_date is not None
                ]
                assert bucket.durations.count == len(seconds)
                if seconds:
                    assert bucket.durations.sum == pytest.approx(sum(seconds), abs=1e-3)
                    assert bucket.durations.min == pytest.approx(min(seconds), abs=1e-3)
                    assert bucket.durations.max == pytest.approx(max(seconds), abs=1e-3)

    def test_histogram_ranges_are_bounded(self, repositories: Repositories) -> None:
        repo = repositories.executions
        too_long = T0 + Interval.HOUR.length * (MAX_BUCKETS + 1)
        for query, path in (
            (ExecutionQuery(end_date=T0), "startDate"),
            (ExecutionQuery(start_date=T0), "endDate"),
            (ExecutionQuery(start_date=T0, end_date=T0 - timedelta(days=1)), "endDate"),
            (ExecutionQuery(start_date=T0, end_date=too_long), "startDate"),
        ):
            with pytest.raises(QueryError) as caught:
                repo.histogram(query, Interval.HOUR)
            assert [p.path for p in caught.value.problems] == [path]
        assert repo.histogram(ExecutionQuery(start_date=T0, end_date=too_long), Interval.DAY) == []

    def test_counts_by_flow_equal_counts_by_hand(self, repositories: Repositories) -> None:
        executions = varied_executions(120)
        for execution in executions:
            repositories.executions.save(execution)
        self.refresh(repositories)
        for query, matching in (
            (ExecutionQuery(), by_hand(executions)),
            (
                ExecutionQuery(namespace="company.team"),
                by_hand(executions, namespace="company.team"),
            ),
        ):
            counted = Counter((e.namespace, e.flow_id, e.state.current) for e in matching)
            found = repositories.executions.count_by_flow(query)
            assert [(c.namespace, c.flow_id, c.state) for c in found] == sorted(counted)
            assert {(c.namespace, c.flow_id, c.state): c.count for c in found} == counted

    def test_duration_percentiles_per_flow(self, repositories: Repositories) -> None:
        executions = varied_executions(200, seed=5)
        for execution in executions:
            repositories.executions.save(execution)
        self.refresh(repositories)
        percents = (0.0, 50.0, 90.0, 99.0, 100.0)
        for query, matching in (
            (ExecutionQuery(), by_hand(executions)),
            (
                ExecutionQuery(namespace="company.team"),
                by_hand(executions, namespace="company.team"),
            ),
        ):
            durations: dict[tuple[str, str], list[float]] = defaultdict(list)
            for e in matching:
                if e.state.end_date is not None:
                    seconds = (e.state.end_date - e.state.start_date).total_seconds()  # type: ignore[operator]
                    durations[(e.namespace, e.flow_id)].append(seconds)
            found = repositories.executions.duration_percentiles(query, percents)
            assert [(f.namespace, f.flow_id) for f in found] == sorted(durations)
            for flow in found:
                ordered = sorted(durations[(flow.namespace, flow.flow_id)])
                assert flow.count == len(ordered)
                assert list(flow.percentiles) == list(percents)
                assert flow.percentiles[0.0] == pytest.approx(ordered[0], abs=1e-3)
                assert flow.percentiles[100.0] == pytest.approx(ordered[-1], abs=1e-3)
                for percent, value in flow.percentiles.items():
                    # exact (interpolated) or approximate: between the neighbours of its rank
                    rank = percent / 100 * (len(ordered) - 1)
                    low = ordered[max(0, int(rank) - 1)]
                    high = ordered[min(len(ordered) - 1, int(rank) + 2)]
                    assert low - 1e-3 <= value <= high + 1e-3, (flow, percent)
                    assert value == pytest.approx(interpolated(ordered, percent), rel=0.05)
        with pytest.raises(QueryError) as caught:
            repositories.executions.duration_percentiles(ExecutionQuery(), (50.0, 101.0))
        assert [p.path for p in caught.value.problems] == ["percents"]
        assert repositories.executions.duration_percentiles(ExecutionQuery(tenant_id="x")) == []
