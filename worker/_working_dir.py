"""A WorkingDirectory on the worker: its runnable tasks one after the other in one directory.

Kestra's ``Worker.handleTask`` for a ``WorkingDirectory``: prepare the directory (the ``cache``
archive unpacked, the namespace's files, ``inputFiles``), run each enabled task in it as a task
run of its own (a RUNNING result, then its outcome, both carrying the task run so the executor
can add it), stop after a failure unless the task has ``allowFailure``, then store
``outputFiles`` and the ``cache``. Each task sees the outputs of the ones before it.

A failed task is retried in the directory, as new attempts of its task run, by Kestra's policy
resolution (its own ``retry``, else the directory's or an enclosing task's, else the flow's): a
failed attempt is reported RETRYING, the next RUNNING with its number. The directory's own
``timeout`` bounds the whole run: the task running at the deadline fails with "Timeout after
<timeout>" (an earlier own timeout still counts), no further task or attempt starts, and the
directory ends FAILED with that message.

The cache is a zip of the files matching ``cache.patterns`` at
``lanner:///<tenant>/<namespace as folders>/<flow>/<task id>/cache[/<value>]/cache.zip`` (Kestra's
``StorageContext.getCacheURI`` below the tenant, as its storages place it: tenants never share a
cache), written when one of them changed since it was restored, ignored (and deleted) once older
than ``ttl``.
Namespace files come from ``common.storage.namespace_files`` (``include``/``exclude`` with
Kestra's path matcher).
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.flow import retries
from common.flow.durations import format_iso_duration
from common.ids import derived_id
from common.models.execution import TaskRun
from common.models.messages import TaskResult, WorkerTask, WorkerTaskResult
from common.models.state import State
from common.plugins.base import Retry
from common.plugins.core.flowable import WorkingDirectory
from common.plugins.core.flowable.workingdir import RETRY_VARIABLE
from common.plugins.core.scripts import collect_output_files, write_input_files
from common.plugins.dynamic import resolve, resolve_model
from common.queue.base import EXECUTOR, Outgoing
from common.storage.base import SCHEME
from common.storage.namespace_files import path_matcher

from ._context import TaskRunContext

if TYPE_CHECKING:
    from ._pool import Worker, _Job

WD_TYPES = ("lanner.core.flow.WorkingDirectory",)

Outcome = tuple[State, dict[str, Any] | None, str | None]


def is_working_directory(task: WorkerTask) -> bool:
    from common.plugins.registry import canonical_type

    return canonical_type(str(task.task.get("type", ""))) in WD_TYPES


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob (``**`` any depth, ``*`` and ``?`` within a name, ``{a,b}``) as a regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append(
            {"*": "[^/]*", "?": "[^/]", "{": "(?:", "}": ")", ",": "|"}.get(char, re.escape(char))
        )
        i += 1
    return re.compile("".join(out))


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(glob_regex(p.lstrip("/")).fullmatch(path.lstrip("/")) for p in patterns)


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if key in into and isinstance(into[key], dict) and isinstance(value, Mapping):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


class WorkingDirectoryRun:
    """One attempt of a WorkingDirectory on ``worker``; ``run()`` gives its own outcome."""

    def __init__(self, worker: Worker, job: _Job, ctx: TaskRunContext) -> None:
        self.worker = worker
        self.job = job
        self.ctx = ctx
        self.task = job.task
        self.run_ = job.task.task_run
        self.wd = WorkingDirectory.model_validate(job.task.task)
        self.workdir = Path(ctx.working_dir)
        self.restored_at = 0.0
        self.deadline: tuple[float, timedelta] | None = None
        self.path = [str(v) for v in job.task.variables.get("__valuesPath__") or []]

    # -------------------------------------------------------------- the attempt

    def run(self) -> Outcome:
        try:
            # PT0S is no timeout, as for any task
            timeout: timedelta | None = resolve(self.wd.timeout, self.ctx.render_typed) or None
        except Exception as exc:
            message = f"Invalid timeout: {exc}"
            self.ctx.log("ERROR", message)
            return State.FAILED, None, self.ctx.mask(message)
        if timeout is not None:
            self.deadline = (time.monotonic() + timeout.total_seconds(), timeout)
        try:
            self.before()
        except Exception as exc:
            message = f"Failed preExecuteTasks on WorkingDirectory: {exc}"
            self.ctx.log("ERROR", message)
            return State.FAILED, None, self.ctx.mask(message)
        failed = self.run_children()
        if self.job.reason is not None:
            return State.KILLED, None, None
        error = None
        if self.timed_out():
            assert timeout is not None
            error = f"Timeout after {format_iso_duration(timeout)}"
            self.ctx.log("ERROR", error)
        try:
            outputs = self.after()
        except Exception as exc:
            message = f"Failed postExecuteTasks on WorkingDirectory: {exc}"
            self.ctx.log("ERROR", message)
            return State.FAILED, None, self.ctx.mask(message)
        return (State.FAILED if failed or error else State.SUCCESS), outputs, error

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline[0]

    def run_children(self) -> bool:
        """Runs the tasks; True if one failed (and stopped the others), or time ran out."""
        variables = dict(self.task.variables)
        outputs: dict[str, Any] = dict(variables.get("outputs") or {})
        path = self.path
        for task in self.task.task.get("tasks") or []:
            if task.get("disabled") is True:
                continue
            if self.job.reason is not None or self.timed_out():
                return True
            state, produced = self.run_child(task, variables, outputs)
            if produced:
                entry: Any = produced
                for value in reversed(path):
                    entry = {value: entry}
                _merge(outputs, {task["id"]: entry})
            if state in (State.FAILED, State.KILLED) and task.get("allowFailure") is not True:
                return True
        return False

    def retry_policy(self, task_id: str) -> Retry | None:
        """Kestra's resolution (``ExecutorService``: the task's own ``retry``, else the nearest
        enclosing task's, else the flow's): the child's, else the one the executor resolved for
        the directory (its own, an enclosing task's or the flow's). Only ``RETRY_FAILED_TASK``
        retries here; the attempts run in the same directory."""
        child = next((t for t in self.wd.tasks if t.id == task_id), None)
        policy = child.retry if child is not None else None
        if policy is None:
            inherited = self.task.variables.get(RETRY_VARIABLE)
            policy = Retry.model_validate(inherited) if inherited else self.wd.retry
        if policy is None or policy.behavior != "RETRY_FAILED_TASK":
            return None
        return resolve_model(policy, self.ctx.render_typed)

    def run_child(
        self, task: dict[str, Any], variables: Mapping[str, Any], outputs: dict[str, Any]
    ) -> tuple[State, dict[str, Any] | None]:
        """Runs one task as one task run, attempt after attempt while its retry policy allows
        (a failed attempt is reported RETRYING, the next one RUNNING with its number)."""
        parent = self.run_
        child = TaskRun(
            id=derived_id(f"{parent.id}:{self.task.attempt}", str(task["id"])),
            execution_id=parent.execution_id,
            namespace=parent.namespace,
            flow_id=parent.flow_id,
            task_id=str(task["id"]),
            parent_task_run_id=parent.id,
        )
        first = datetime.now(UTC)
        child.set_state(State.RUNNING, first)
        try:
            policy = self.retry_policy(child.task_id)
        except Exception as exc:
            self.ctx.log("ERROR", f"retry of '{child.task_id}': {exc}")
            policy = None
        attempt = 1
        while True:
            ended = self.run_attempt(child, attempt, task, variables, outputs)
            if ended is None:
                return State.KILLED, None  # handed back: the directory runs again whole
            state, produced, error, records = ended
            due = None
            if state == State.FAILED and policy is not None and self.job.reason is None:
                now = datetime.now(UTC)
                due = retries.next_attempt_at(policy, attempt, now, first, f"{child.id}:{attempt}")
                if due is not None and self.deadline is not None:
                    left = self.deadline[0] - time.monotonic()
                    if (due - now).total_seconds() >= left:
                        due = None  # the directory's time ends first
            final = State.RETRYING if due is not None else state
            records.append(
                (EXECUTOR, parent.execution_id, self.result(child, attempt, final, produced, error))
            )
            self.worker._report(records, f"{child.id}:{attempt}")
            if due is None:
                return state, produced
            wait = (due - datetime.now(UTC)).total_seconds()
            if (wait > 0 and self.job.kill.wait(wait)) or self.job.reason is not None:
                return State.KILLED, None
            attempt += 1

    def run_attempt(
        self,
        child: TaskRun,
        attempt: int,
        task: dict[str, Any],
        variables: Mapping[str, Any],
        outputs: dict[str, Any],
    ) -> tuple[State, dict[str, Any] | None, str | None, list[Outgoing]] | None:
        """One attempt of a task in the directory: its outcome and the records to report with
        it (its buffered logs), or None when the worker hands the directory back."""
        from ._pool import _Job

        parent = self.run_
        now = datetime.now(UTC)
        own = variables.get("taskrun") or {}
        parents = list(variables.get("parents") or [])
        if own.get("value") is not None:
            parents.insert(0, {"taskrun": {"value": own["value"]}})
        child_vars = {
            **variables,
            "outputs": outputs,
            "task": {"id": task["id"], "type": task.get("type")},
            "taskrun": {
                "id": child.id,
                "startDate": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "parentId": parent.id,
                # the value of the nearest enclosing iteration, as Kestra's children inherit it
                "value": self.path[-1] if self.path else None,
                "attemptsCount": attempt - 1,
                "iteration": None,
            },
        }
        child_vars.pop("__valuesPath__", None)
        child_vars.pop(RETRY_VARIABLE, None)
        if parents:
            child_vars["parents"] = parents
            child_vars["parent"] = parents[0]
        child_task = WorkerTask(
            task_run=child,
            task=task,
            variables=child_vars,
            attempt=attempt,
            worker_group=self.task.worker_group,
            tenant_id=self.task.tenant_id,
            sequence=self.task.sequence,
        )
        child_job = _Job(child_task, kill=self.job.kill, wake=self.job.wake, deadline=self.deadline)
        worker = self.worker
        with worker._cond:  # kill orders and the drain on stop reach it too
            worker._running[child_task.job_id] = child_job
            if self.job.reason is not None:
                child_job.reason = self.job.reason
        min_level = task.get("logLevel")
        ctx = TaskRunContext(
            child_task,
            queue=worker.queue,
            storage=worker.storage,
            tenant=worker.config.tenant,
            kill_event=self.job.kill,
            min_level=min_level if isinstance(min_level, str) else None,
            kill_grace=worker.config.kill_grace,
            secret_box=worker.secret_box,
            buffer_logs=True,
            on_buffered=self.job.wake.set,
            working_dir=str(self.workdir),
            uri_scheme=worker.config.uri_scheme,
            repositories=worker._open_repositories if worker._repositories is not None else None,
        )
        try:
            running = self.result(child, attempt, State.RUNNING)
            worker._report([(EXECUTOR, parent.execution_id, running)], "")
            try:
                state, produced, error = worker._attempt(child_job, ctx)
            except Exception as exc:  # a bug of the worker: still report the task run
                state, produced, error = State.FAILED, None, f"{type(exc).__name__}: {exc}"
            if child_job.reason == "shutdown":
                return None
            return state, produced, error, ctx.take_logs()
        finally:
            with worker._cond:
                worker._running.pop(child_task.job_id, None)

    def result(
        self,
        child: TaskRun,
        attempt: int,
        state: State,
        outputs: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> bytes:
        result = WorkerTaskResult(
            execution_id=child.execution_id,
            task_run_id=child.id,
            attempt=attempt,
            state=state,
            outputs=dict(outputs) if outputs is not None else None,
            error=error,
            worker_id=self.worker.id,
            date=datetime.now(UTC),
            task_run=child,
        )
        return TaskResult(
            id=result.input_id, execution_id=result.execution_id, result=result
        ).to_json()

    # -------------------------------------------------------------- before and after

    def before(self) -> None:
        if self.wd.cache is not None:
            self.restore_cache()
        options = self.wd.namespace_files
        if options is not None and resolve(options.enabled, self.ctx.render_typed) is not False:
            self.copy_namespace_files()
        if self.wd.input_files is not None:
            write_input_files(self.ctx, self.workdir, self.extra, self.wd.input_files)

    def after(self) -> dict[str, Any] | None:
        outputs: dict[str, Any] | None = None
        if self.wd.output_files is not None:
            found = collect_output_files(self.ctx, self.workdir, self.extra, self.wd.output_files)
            outputs = {"outputFiles": found}
        if self.wd.cache is not None:
            self.save_cache()
        return outputs

    @property
    def extra(self) -> dict[str, Any]:
        return {"workingDir": str(self.workdir), "outputDir": str(self.workdir)}

    def copy_namespace_files(self) -> None:
        """Kestra's ``findAllFilesMatching(include, exclude)`` over each namespace's files."""
        options = self.wd.namespace_files
        assert options is not None
        include = path_matcher(options.include) if options.include else None
        exclude = path_matcher(options.exclude) if options.exclude else None
        for namespace in options.namespaces or [self.run_.namespace]:
            files = self.ctx.namespace_files(namespace)
            for path in files.all():
                if include is not None and not include.fullmatch(path):
                    continue
                if exclude is not None and exclude.fullmatch(path):
                    continue
                base = self.workdir / namespace if options.folder_per_namespace else self.workdir
                target = base / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    for chunk in files.stream(path):
                        out.write(chunk)

    def cache_uri(self) -> str:
        run = self.run_
        value = f"{run.value}/" if run.value else ""
        flow = f"{run.namespace.replace('.', '/')}/{run.flow_id}"
        return f"{SCHEME}/{self.ctx.tenant}/{flow}/{run.task_id}/cache/{value}cache.zip"

    def restore_cache(self) -> None:
        cache = self.wd.cache
        assert cache is not None
        storage = self.worker.storage
        uri = self.cache_uri()
        if not storage.exists(uri):
            return
        ttl = resolve(cache.ttl, self.ctx.render_typed)
        if ttl is not None and datetime.now(UTC) - storage.stat(uri).last_modified > ttl:
            self.ctx.log("DEBUG", "Cache expired, deleting it")
            storage.delete(uri)
            return
        self.ctx.log("DEBUG", "Cache exists, restoring it")
        with zipfile.ZipFile(io.BytesIO(storage.get(uri))) as archive:
            for name in archive.namelist():
                target = (self.workdir / name).resolve()
                if self.workdir.resolve() not in target.parents or name.endswith("/"):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
        self.restored_at = time.time()

    def save_cache(self) -> None:
        cache = self.wd.cache
        assert cache is not None
        files = [
            p
            for p in sorted(self.workdir.rglob("*"))
            if p.is_file() and _matches(p.relative_to(self.workdir).as_posix(), cache.patterns)
        ]
        if not any(p.stat().st_mtime > self.restored_at for p in files):
            self.ctx.log("DEBUG", "Cache files didn't change, skip updating it")
            return
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for p in files:
                archive.write(p, p.relative_to(self.workdir).as_posix())
        self.worker.storage.put(self.cache_uri(), buffer.getvalue())
        self.ctx.log("DEBUG", f"Caching in {self.cache_uri()}")
