"""The repository contract, written once and run against every backend.

A backend's test module subclasses ``RepositoryContract`` and provides a ``repositories``
fixture returning fresh, empty ``Repositories``. Backends that index asynchronously (for
example Elasticsearch) override ``refresh`` to make writes visible to searches.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.models.execution import Execution, Label, StateEntry, StateInfo
from common.models.messages import LogEntry, MetricEntry, WorkerHeartbeat
from common.models.state import State
from common.repository.base import ExecutionQuery, FlowRecord, Repositories

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
) -> Execution:
    histories = [StateEntry(state=State.CREATED, date=start)]
    if state != State.CREATED:
        histories.append(StateEntry(state=state, date=start + timedelta(seconds=5)))
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
