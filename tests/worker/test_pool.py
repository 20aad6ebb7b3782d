"""The pool: timeouts, kills, failures, backpressure, deduplication, heartbeats, shutdown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from common.errors import QueueError
from common.models.messages import WorkerHeartbeat
from common.models.state import State
from common.queue.base import WORKER_JOBS, WORKERS, Record
from tests.infra.processes import group_pids

from .conftest import Harness, Reader


def _wait_until(predicate: object, reader: Reader) -> None:
    assert callable(predicate)
    reader.wait_for(lambda _: bool(predicate()))


def test_timeout_fails_with_timeout_log(running: Harness) -> None:
    task = running.submit(
        {
            "id": "slow",
            "type": "io.kestra.plugin.core.flow.Sleep",
            "duration": "PT60S",
            "timeout": "PT0.2S",
        }
    )
    result = running.final(task)
    assert result.state == State.FAILED
    assert result.error is not None and "Timeout" in result.error
    assert any(e.level == "ERROR" and "Timeout" in e.message for e in running.logs_of(task))


def test_timeout_kills_a_subprocess(running: Harness) -> None:
    task = running.submit(
        {
            "id": "slow",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "commands": ["sleep 60"],
            "timeout": "PT0.3S",
        }
    )
    result = running.final(task)
    assert result.state == State.FAILED
    assert "Timeout" in (result.error or "")


def test_kill_running_sleep(running: Harness) -> None:
    task = running.submit(
        {"id": "nap", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT60S"}
    )
    running.wait_running(task)
    running.kill(task.task_run.execution_id)
    assert running.final(task).state == State.KILLED


def test_kill_running_shell_leaves_no_process(running: Harness, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    task = running.submit(
        {
            "id": "sh",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "commands": [f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}", "sleep 60"],
        }
    )
    _wait_until(pidfile.exists, running.results)
    pgid = int(pidfile.read_text())
    assert group_pids(pgid)
    running.kill(task.task_run.execution_id, task.task_run.id)
    assert running.final(task).state == State.KILLED
    _wait_until(lambda: not group_pids(pgid), running.results)


def test_kill_of_another_execution_does_not_stop_the_task(running: Harness) -> None:
    task = running.submit(
        {"id": "nap", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT0.3S"}
    )
    running.wait_running(task)
    running.kill("some-other-execution")
    assert running.final(task).state == State.SUCCESS


def test_failures_never_stop_the_worker(running: Harness) -> None:
    bad = [
        {"id": "a", "type": "io.kestra.plugin.core.unknown.Nope"},
        {"id": "b", "type": "io.kestra.plugin.core.log.Log"},  # missing message
        {"id": "c", "type": "io.kestra.plugin.core.log.Log", "message": "x", "typo": 1},
        {"id": "d", "type": "io.kestra.plugin.core.log.Log", "message": "{{ nope.missing }}"},
        {"id": "e", "type": "io.kestra.plugin.core.flow.Parallel", "tasks": []},
        {"id": "f", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "not-a-duration"},
    ]
    for task in bad:
        submitted = running.submit(task)
        result = running.final(submitted)
        assert result.state == State.FAILED, task
        assert result.error
        assert any(e.level == "ERROR" for e in running.logs_of(submitted)), task
    result, _ = running.run({"id": "ok", "type": "io.kestra.plugin.core.log.Log", "message": "ok"})
    assert result.state == State.SUCCESS


def test_backpressure_never_more_running_than_threads(harness: Harness) -> None:
    harness.worker(threads=2)
    tasks = [
        harness.submit(
            {"id": f"t{i}", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT0.05S"}
        )
        for i in range(10)
    ]
    for task in tasks:
        assert harness.final(task).state == State.SUCCESS
    running: set[str] = set()
    peak = 0
    for result in harness.all_results():
        if result.state == State.RUNNING:
            running.add(result.task_run_id)
        else:
            running.discard(result.task_run_id)
        peak = max(peak, len(running))
    assert peak == 2
    assert len([r for r in harness.all_results() if r.state == State.RUNNING]) == 10


def test_duplicate_job_runs_once(running: Harness) -> None:
    task = running.submit({"id": "once", "type": "io.kestra.plugin.core.log.Log", "message": "m"})
    assert running.final(task).state == State.SUCCESS
    # the same (task run, attempt) redelivered, then a marker task behind it
    running.queue.emit("worker-tasks", task.task_run.id, task.to_json())
    marker = running.submit(
        {"id": "marker", "type": "io.kestra.plugin.core.log.Log", "message": "m"}
    )
    running.final(marker)
    assert [r.state for r in running.results_of(task)] == [State.RUNNING, State.SUCCESS]


def test_an_outcome_the_queue_refuses_for_a_while_is_reported_once_it_accepts(
    running: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded server's disk full (tests/faults/test_disk_full_embedded.py): the result
    of a task that ended meanwhile was dropped after three tries, and its execution stayed
    RUNNING for ever (an embedded worker is never declared dead)."""
    emit_many = running.queue.emit_many
    refused: list[int] = []

    def full_disk(records: list[Any]) -> None:
        if any(topic == WORKER_JOBS and value is None for topic, _, value in records):
            if len(refused) < 5:
                refused.append(len(records))
                raise QueueError("cannot write to the embedded queue: database or disk is full")
        emit_many(records)

    monkeypatch.setattr(running.queue, "emit_many", full_disk)
    task = running.submit({"id": "j", "type": "io.kestra.plugin.core.log.Log", "message": "m"})
    assert running.final(task).state == State.SUCCESS
    assert len(refused) == 5


def test_job_records_and_tombstone(running: Harness) -> None:
    jobs = Reader(running.queue, [WORKER_JOBS])
    task = running.submit({"id": "j", "type": "io.kestra.plugin.core.log.Log", "message": "m"})
    running.final(task)
    records = jobs.wait_for(lambda r: len(r) >= 2)
    assert [r.key for r in records] == [task.task_run.id, task.task_run.id]
    assert records[0].value is not None and records[1].value is None


def test_secrets_are_masked(running: Harness) -> None:
    result, logs = running.run(
        {"id": "s", "type": "io.kestra.plugin.core.log.Log", "message": "pw={{ inputs.pw }}"},
        {"inputs": {"pw": "s3cr3t"}, "__secrets__": ["s3cr3t"]},
    )
    assert result.state == State.SUCCESS
    assert [e.message for e in logs] == ["pw=********"]


def test_large_outputs_go_to_storage(harness: Harness) -> None:
    harness.worker(max_output_bytes=200)
    big = "x" * 1000
    result, logs = harness.run(
        {"id": "big", "type": "io.kestra.plugin.core.debug.Return", "format": big}
    )
    assert result.state == State.SUCCESS and result.outputs is not None
    uri = result.outputs["value"]
    assert uri.startswith("lanner://") and uri.endswith("/outputs/value.txt")
    assert harness.storage.get(uri) == big.encode()
    assert any("too large" in e.message for e in logs)


def test_heartbeats_and_stop_hands_back_what_still_runs(harness: Harness) -> None:
    beats = Reader(harness.queue, [WORKERS])
    worker = harness.worker(threads=3)

    def decoded(records: list[Record]) -> list[WorkerHeartbeat]:
        return [WorkerHeartbeat.model_validate_json(r.value or b"") for r in records]

    beats.wait_for(lambda r: len(decoded(r)) >= 2)
    first = decoded(beats.records)[0]
    assert (first.worker_id, first.threads, first.status) == (worker.id, 3, "UP")
    task = harness.submit(
        {"id": "n", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT60S"}
    )
    harness.wait_running(task)
    beats.wait_for(lambda r: any(h.running == 1 for h in decoded(r)))
    worker.stop(drain_timeout=0)
    # handed back, not KILLED: the executor resubmits it as a new attempt at once
    harness.results.wait_for(lambda _: bool(harness.handed_back(task)))
    [died] = harness.handed_back(task)
    assert (died.attempt, died.worker_id) == (1, worker.id)
    assert died.id == f"worker-died:{task.task_run.id}:1"  # the coordinator's id for it
    assert not [r for r in harness.results_of(task) if r.state.terminal]
    assert any("handed back" in e.message for e in harness.logs_of(task))
    last = decoded(beats.wait_for(lambda r: decoded(r)[-1].status == "TERMINATING"))[-1]
    assert last.running == 0


def test_stop_drains_running_tasks(harness: Harness) -> None:
    worker = harness.worker()
    task = harness.submit(
        {"id": "n", "type": "io.kestra.plugin.core.flow.Sleep", "duration": "PT0.3S"}
    )
    harness.wait_running(task)
    worker.stop(drain_timeout=30)
    assert harness.final(task).state == State.SUCCESS


def test_worker_group_topic(harness: Harness) -> None:
    harness.worker(group="gpu")
    task = harness.submit(
        {"id": "g", "type": "io.kestra.plugin.core.log.Log", "message": "m"}, group="gpu"
    )
    assert harness.final(task).state == State.SUCCESS


def test_config_from_settings(harness: Harness, tmp_path: Path) -> None:
    from common.settings import Settings
    from worker import Worker

    settings = Settings(data_dir=tmp_path, worker_threads=3, worker_group="g", max_output_bytes=9)
    worker = Worker(harness.queue, harness.storage, settings)
    assert (worker.threads, worker.config.group, worker.config.max_output_bytes) == (3, "g", 9)
    assert Worker(harness.queue, harness.storage).threads == 8 * (os.cpu_count() or 1)


def test_logs_of_a_long_task_show_while_it_runs_and_none_are_lost_on_kill(
    running: Harness,
) -> None:
    task = running.submit(
        {
            "id": "sh",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "commands": ["echo started", "sleep 60"],
        }
    )
    # the line is buffered, then flushed ~0.5 s later while the task still sleeps
    _wait_until(lambda: any("started" in e.message for e in running.logs_of(task)), running.results)
    assert not any(r.state.terminal for r in running.results_of(task))
    running.kill(task.task_run.execution_id, task.task_run.id)
    assert running.final(task).state == State.KILLED
    messages = [e.message for e in running.logs_of(task)]
    assert messages.count("started") == 1
    assert any("killed" in m for m in messages)


def test_many_log_lines_all_arrive_in_order(running: Harness) -> None:
    result, logs = running.run(
        {
            "id": "sh",
            "type": "io.kestra.plugin.scripts.shell.Commands",
            "commands": ["for i in $(seq 1 250); do echo line$i; done"],
        }
    )
    assert result.state == State.SUCCESS
    lines = [e.message for e in logs if e.message.startswith("line")]
    assert lines == [f"line{i}" for i in range(1, 251)]
