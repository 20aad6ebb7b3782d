"""The ``RunContext`` a runnable task gets on the worker.

Rendering uses the WorkerTask's ``variables`` (the executor already put ``taskrun``,
``outputs``... there) plus the functions that need the worker: ``read(uri)``,
``fileExists(uri)``, ``fileSize(uri)``, ``fileURI(path)``, ``errorLogs()`` (from
``variables["__errorLogs__"]``, put there by the executor); ``secret(name)`` is wrapped so
its values are masked.
Logs go to the ``logs`` topic (key: execution id) and to Python logging; every occurrence of a
secret (``variables["__secrets__"]`` and values returned by ``secret()``) is replaced by
``********`` first. Files live under ``lanner:///<tenant>/<namespace as folders>/<flow>/
executions/<execution>/tasks/<task>/<taskrun>/`` (Kestra's multi-tenant layout, as for FILE
inputs), written with the worker's ``uri_scheme`` (``lanner://`` or ``kestra://``); both
schemes are read. ``read(path)`` of a path that is no URI reads the
namespace file ``fileURI(path)`` names.

Tasks that read or purge execution history (``execution.Count``, ``log.Fetch``, ``PurgeLogs``,
``PurgeExecutions``) reach the repository through ``repositories()``: the embedded server passes
its SQLite repositories, a Kafka worker opens the configured ones on first use. Nothing else on
the worker touches the repository, so executions keep running while it is down.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from common.ids import new_id
from common.models.messages import LogEntry, MetricEntry, WorkerTask
from common.models.trigger import TriggerRequest
from common.plugins.core._support import ProcessResult
from common.queue.base import LOGS, METRICS, Queue
from common.repository.base import Repositories
from common.secrets import SecretBox
from common.secrets import mask as mask_secrets
from common.storage.base import (
    SCHEME,
    Storage,
    execution_folders,
    execution_uri,
    is_storage_uri,
    tenant_confinement,
)
from common.storage.kv import KVStore
from common.storage.namespace_files import NamespaceFiles, file_uri
from common.templating._functions import kv_function

from ._scripts import run_process

LEVEL_ORDER = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4}
_PY_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}
task_logger = logging.getLogger("lanner.worker.task")
#: buffered log lines are flushed when there are more than this many...
LOG_FLUSH_LINES = 100
#: ...or this many seconds after the first buffered line
LOG_FLUSH_SECONDS = 0.5


def normalize_level(level: str) -> str:
    text = level.strip().upper()
    if text == "WARNING":
        return "WARN"
    return text if text in LEVEL_ORDER else "INFO"


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value or "{#" in value
    if isinstance(value, Mapping):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_template(v) for v in value)
    return False


class TaskRunContext:
    """One attempt's context; ``cleanup()`` removes its working directory."""

    def __init__(
        self,
        task: WorkerTask,
        *,
        queue: Queue,
        storage: Storage,
        tenant: str,
        kill_event: threading.Event,
        min_level: str | None = None,
        kill_grace: float = 5.0,
        secret_box: SecretBox | None = None,
        buffer_logs: bool = False,
        on_buffered: Callable[[], None] | None = None,
        uri_scheme: str = "lanner",
        repositories: Repositories | Callable[[], Repositories] | None = None,
        working_dir: str | None = None,
    ) -> None:
        self.task = task
        self.queue = queue
        self.storage = storage
        self.tenant = task.tenant_id or tenant
        self.kill_event = kill_event
        self.kill_grace = kill_grace
        self.min_level = LEVEL_ORDER.get(normalize_level(min_level or "TRACE"), 0)
        run = task.task_run
        self.scheme = "kestra://" if uri_scheme == "kestra" else SCHEME
        self._repositories = repositories
        self.base_uri = (
            execution_uri(self.tenant, run.namespace, run.flow_id, run.execution_id, self.scheme)
            + f"tasks/{run.task_id}/{run.id}/"
        )
        # every URI a task gives goes through this: another tenant's file fails the task
        self._confine = tenant_confinement(
            self.tenant, run.namespace, run.flow_id, run.execution_id
        )
        self._variables = dict(task.variables)
        raw = self._variables.get("__secrets__") or []
        self._secrets: set[str] = {str(s) for s in raw if s}
        if "inputs" in self._variables and secret_box is not None:
            self._variables["inputs"] = secret_box.reveal(self._variables["inputs"], self._secrets)
        # a WorkingDirectory's children share its directory, which they must not remove
        self._workdir: str | None = working_dir
        self._owns_workdir = working_dir is None
        # log records not emitted yet (``buffer_logs``): flushed by ``log`` past
        # LOG_FLUSH_LINES lines or LOG_FLUSH_SECONDS, or taken by the worker with the result
        self._buffering = buffer_logs
        self._log_lock = threading.Lock()
        self._log_buffer: list[tuple[str, str | None, bytes | None]] = []
        self._log_since = 0.0
        self._on_buffered = on_buffered  # called when a line lands in an empty buffer
        self._functions: dict[str, Callable[..., Any]] = {
            "read": self._read,
            "fileExists": self.file_exists,
            "fileSize": self.file_size,
            "fileURI": self._file_uri,
            "secret": self._secret,
            "errorLogs": self._error_logs,
            "kv": kv_function(self._kv_read),
        }

    # -------------------------------------------------------------- rendering

    @property
    def variables(self) -> Mapping[str, Any]:
        return self._variables

    def _read(self, path: Any) -> str:
        """Kestra's ``read(path)``: an internal-storage URI (either scheme), or the path of a
        namespace file of the flow's namespace."""
        text = str(path)
        if is_storage_uri(text):
            data = self.get_file(text)
        else:
            data = self.namespace_files(None).get(text)
        return data.decode("utf-8", errors="replace")

    def _file_uri(self, path: Any) -> str:
        """Kestra's ``fileURI(path)``: the URI of a namespace file of the flow's namespace."""
        from common.errors import LannerError, TemplateError

        try:
            return file_uri(self.tenant, self.task.task_run.namespace, str(path), self.scheme)
        except LannerError as exc:
            raise TemplateError(str(exc)) from exc

    def repositories(self) -> Repositories:
        """The repositories of execution history (tasks that count, fetch or purge it)."""
        if self._repositories is None:
            from common.plugins.core._support import TaskFailed

            raise TaskFailed("this worker has no access to the repository")
        if callable(self._repositories):
            self._repositories = self._repositories()
        return self._repositories

    @property
    def tenant_id(self) -> str:
        return self.tenant

    def _kv_read(self, namespace: str | None, key: str) -> tuple[bool, Any, str]:
        from common.storage.kv import validate_key

        store = self.kv_store(namespace)
        missing = object()
        value = store.value(validate_key(key), missing)
        if value is missing:
            return False, None, store.namespace
        return True, value, store.namespace

    def kv_store(self, namespace: str | None) -> KVStore:
        return KVStore(self.storage, self.tenant, namespace or self.task.task_run.namespace)

    def namespace_files(self, namespace: str | None) -> NamespaceFiles:
        return NamespaceFiles(self.storage, self.tenant, namespace or self.task.task_run.namespace)

    def _error_logs(self) -> list[Any]:
        """``errorLogs()``: what the executor put in ``variables["__errorLogs__"]``."""
        logs = self._variables.get("__errorLogs__")
        return list(logs) if isinstance(logs, list) else []

    def _secret(self, name: Any) -> str:
        from common.templating._functions import fn_secret

        value = fn_secret(name)
        if value:
            self._secrets.add(value)
        return value

    def render(self, value: Any) -> Any:
        return self.render_with(value, {})

    def render_with(self, value: Any, extra: Mapping[str, Any]) -> Any:
        if not _has_template(value):
            return value
        from common.templating import render_object

        variables = {**self._variables, **extra} if extra else self._variables
        return render_object(value, variables, functions=self._functions)

    def render_typed(self, value: Any) -> Any:
        if not isinstance(value, str):
            return self.render(value)
        if not _has_template(value):
            return value
        from common.templating import render_typed

        return render_typed(value, self._variables, functions=self._functions)

    # -------------------------------------------------------------- logs and metrics

    def mask(self, message: str) -> str:
        return str(mask_secrets(message, self._secrets))

    def mask_outputs(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Outputs travel to the API: a secret inside them is masked too."""
        return dict(mask_secrets(outputs, self._secrets))

    def log(self, level: str, message: str) -> None:
        level = normalize_level(level)
        if LEVEL_ORDER[level] < self.min_level:
            return
        message = self.mask(str(message))
        run = self.task.task_run
        entry = LogEntry(
            tenant_id=self.task.tenant_id,
            namespace=run.namespace,
            flow_id=run.flow_id,
            execution_id=run.execution_id,
            task_id=run.task_id,
            task_run_id=run.id,
            attempt_number=self.task.attempt,
            timestamp=datetime.now(UTC),
            level=level,  # type: ignore[arg-type]
            thread=threading.current_thread().name,
            message=message,
        )
        task_logger.log(
            _PY_LEVELS[level],
            message,
            extra={
                "execution_id": run.execution_id,
                "task_id": run.task_id,
                "task_run_id": run.id,
                "attempt": self.task.attempt,
            },
        )
        record = (LOGS, run.execution_id, entry.to_json())
        if not self._buffering:
            self.queue.emit(*record)
            return
        with self._log_lock:
            if not self._buffering:  # taken meanwhile (an abandoned task still logging)
                self.queue.emit(*record)
                return
            first = not self._log_buffer
            if first:
                self._log_since = time.monotonic()
            self._log_buffer.append(record)
            if (
                len(self._log_buffer) > LOG_FLUSH_LINES
                or time.monotonic() - self._log_since >= LOG_FLUSH_SECONDS
            ):
                self._flush_locked()
        if first and self._on_buffered is not None:
            self._on_buffered()  # the worker flushes it in time if no other line comes

    def _flush_locked(self) -> None:
        if self._log_buffer:
            self.queue.emit_many(self._log_buffer)  # kept if it fails: never lost
            self._log_buffer = []

    def flush_logs(self) -> None:
        """Emit the buffered log lines now."""
        with self._log_lock:
            self._flush_locked()

    def log_flush_due(self) -> float | None:
        """Seconds until the buffered lines are due (<= 0: now); None if there are none."""
        with self._log_lock:
            if not self._log_buffer:
                return None
            return self._log_since + LOG_FLUSH_SECONDS - time.monotonic()

    def take_logs(self) -> list[tuple[str, str | None, bytes | None]]:
        """The buffered log records, for the worker to emit with the attempt's result; lines
        logged after this call (by an abandoned task thread) are emitted one by one."""
        with self._log_lock:
            self._buffering = False
            taken, self._log_buffer = self._log_buffer, []
            return taken

    def metric(
        self,
        name: str,
        value: float,
        kind: str = "counter",
        tags: Mapping[str, str] | None = None,
    ) -> None:
        run = self.task.task_run
        entry = MetricEntry(
            tenant_id=self.task.tenant_id,
            namespace=run.namespace,
            flow_id=run.flow_id,
            execution_id=run.execution_id,
            task_id=run.task_id,
            task_run_id=run.id,
            name=name,
            type="timer" if kind == "timer" else "counter",
            value=value,
            tags=dict(tags or {}),
            timestamp=datetime.now(UTC),
        )
        self.queue.emit(METRICS, run.execution_id, entry.to_json())

    # -------------------------------------------------------------- kill

    def is_killed(self) -> bool:
        return self.kill_event.is_set()

    def wait_killed(self, timeout: float) -> bool:
        return self.kill_event.wait(timeout)

    # -------------------------------------------------------------- files

    @property
    def working_dir(self) -> str:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix=f"lanner-{self.task.task_run.id}-")
        return self._workdir

    def cleanup(self) -> None:
        if self._workdir is not None and self._owns_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _new_uri(self, name: str) -> str:
        """A free URI for ``name`` (a relative path; ``..`` parts are dropped)."""
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
        name = "/".join(parts) or "file"
        uri = self.base_uri + name
        if self.storage.exists(uri):
            head, _, tail = name.rpartition("/")
            uri = f"{self.base_uri}{head + '/' if head else ''}{new_id()[:10]}-{tail}"
        return uri

    def put_data(self, name: str, data: bytes) -> str:
        return self.storage.put(self._new_uri(name), data)

    def put_file(self, path: str) -> str:
        return self.put_path(os.path.basename(path), path)

    def put_path(self, name: str, path: str) -> str:
        with open(path, "rb") as source:  # streamed: an output file may not fit in memory
            return self.storage.put(self._new_uri(name), source)

    def download(self, uri: str, target: str) -> None:
        chunks = self.storage.stream(self._confine(uri))
        with open(target, "wb") as out:
            for chunk in chunks:
                out.write(chunk)

    def send_trigger_request(self, request: TriggerRequest) -> None:
        from common.trigger_requests import send_request

        send_request(self.queue, request)

    def get_file(self, uri: str) -> bytes:
        return self.storage.get(self._confine(uri))

    def delete_file(self, uri: str) -> bool:
        return self.storage.delete(self._confine(uri))

    def delete_prefix(self, uri: str) -> int:
        return self.storage.delete_prefix(self._confine(uri))

    def delete_execution_files(self, namespace: str, flow_id: str, execution_id: str) -> int:
        """Deletes the files of an execution of this task's tenant (``PurgeExecutions`` found it
        in the tenant's repository), in both layouts."""
        folders = execution_folders(self.tenant, namespace, flow_id, execution_id)
        return sum(self.storage.delete_prefix(folder) for folder in folders)

    def file_size(self, uri: str) -> int:
        return self.storage.size(self._confine(str(uri)))

    def file_exists(self, uri: str) -> bool:
        return self.storage.exists(self._confine(str(uri)))

    # -------------------------------------------------------------- subprocesses

    def run_process(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        *,
        stderr_level: str = "ERROR",
    ) -> ProcessResult:
        return run_process(
            args,
            env,
            self.working_dir,
            kill_event=self.kill_event,
            log=self.log,
            metric=self.metric,
            stderr_level=stderr_level,
            grace=self.kill_grace,
        )
