"""What runnable core tasks need from the worker beyond ``RunContext``.

- ``TaskFailed``: raise it to fail the attempt *with* outputs (a script's ``exitCode``).
- ``FinalOutputs``: return it instead of a plain dict to end in another state than SUCCESS
  (``WARNING``), like Kestra's ``Output.finalState()``.
- ``WorkerContext``: the worker's context also runs subprocesses (the ``::{...}::`` protocol is
  parsed there) and deletes or sizes internal-storage files.

The worker reads ``outputs`` / ``final_state`` by attribute, so other plugins may use the same
names without importing this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from common.plugins.base import RunContext

if TYPE_CHECKING:
    from common.repository.base import Repositories
    from common.storage.kv import KVStore
    from common.storage.namespace_files import NamespaceFiles


class TaskFailed(Exception):
    """Fails the attempt with a message (logged at ERROR) and optional outputs."""

    def __init__(self, message: str, outputs: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.outputs = dict(outputs) if outputs is not None else None


class FinalOutputs(dict[str, Any]):
    """Outputs that carry the final state of the attempt (``WARNING``)."""

    def __init__(self, values: Mapping[str, Any], final_state: str | None = None) -> None:
        super().__init__(values)
        self.final_state = final_state


@dataclass
class ProcessResult:
    """What a subprocess run produced: exit code and what it sent through ``::{...}::``."""

    exit_code: int
    vars: dict[str, Any] = field(default_factory=dict)
    stdout_lines: int = 0
    stderr_lines: int = 0
    killed: bool = False


class WorkerContext(RunContext, Protocol):
    def render_with(self, value: Any, extra: Mapping[str, Any]) -> Any:
        """Render with additional variables (``workingDir``, ``outputDir``)."""
        ...

    def run_process(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        *,
        stderr_level: str = "ERROR",
    ) -> ProcessResult:
        """Run a subprocess in ``working_dir`` (own process group, killed on kill/timeout)."""
        ...

    def delete_file(self, uri: str) -> bool: ...

    def delete_prefix(self, uri: str) -> int:
        """Delete every file under the folder ``uri``; how many."""
        ...

    def delete_execution_files(self, namespace: str, flow_id: str, execution_id: str) -> int:
        """Delete the files of an execution of the task's tenant (both layouts); how many."""
        ...

    @property
    def tenant_id(self) -> str: ...

    def repositories(self) -> Repositories:
        """The repositories of execution history (``TaskFailed`` if the worker has none)."""
        ...

    def file_size(self, uri: str) -> int: ...

    def put_data(self, name: str, data: bytes) -> str:
        """Store bytes as a file of this task run; return its ``lanner://`` URI."""
        ...

    def put_path(self, name: str, path: str) -> str:
        """Store the local file ``path`` as ``name``, streamed; return its ``lanner://`` URI."""
        ...

    def download(self, uri: str, target: str) -> None:
        """Write the file at ``uri`` to the local path ``target``, streamed."""
        ...

    def kv_store(self, namespace: str | None) -> KVStore:
        """The KV store of ``namespace`` (the flow's when None) in the task's tenant."""
        ...

    def namespace_files(self, namespace: str | None) -> NamespaceFiles:
        """The files of ``namespace`` (the flow's when None) in the task's tenant."""
        ...


def worker_context(ctx: RunContext) -> WorkerContext:
    """The context as a ``WorkerContext`` (a clear error if the runtime lacks the methods)."""
    if not hasattr(ctx, "run_process"):
        raise TypeError("this task needs Lanner's worker context")
    return ctx  # type: ignore[return-value]
