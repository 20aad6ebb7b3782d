"""Core plugins: scripts (``lanner.scripts.shell.Commands``, ``lanner.scripts.python.Script``).

Both run as a local process in the task run's fresh working directory, through ``interpreter``
(default ``/bin/sh -c``): ``beforeCommands`` then the commands, joined by newlines, with
``set -e`` first when ``failFast`` (default). ``containerImage``/``taskRunner`` are accepted for
Kestra compatibility and ignored (a log line says so). Outputs are
``{"vars": ..., "exitCode": N, "outputFiles": {name: uri}}``; ``vars`` merges the ``outputs`` of
every ``::{...}::`` line the process printed (Kestra's protocol, parsed by the worker).

stderr lines are logged at ERROR, as Kestra does since 0.21; a non-zero exit fails the attempt
with ``Command failed with exit code N``. ``warningOnStdErr: true`` restores Kestra's former
behaviour: stderr logged at WARN and the attempt ends in WARNING when anything was written there
(Kestra deprecated the property in 0.23 and ignores it; so does Lanner when it is unset/false).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from common.ids import new_id
from common.plugins.base import RunContext, RunnableTask
from common.plugins.dynamic import DynamicBool, DynamicMap, resolve

from ._support import FinalOutputs, TaskFailed, WorkerContext, worker_context

_SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "ash"}


class _ScriptTask(RunnableTask):
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    before_commands: list[str] | None = Field(default=None, alias="beforeCommands")
    env: DynamicMap | None = None
    input_files: dict[str, str] | str | None = Field(default=None, alias="inputFiles")
    output_files: list[str] | None = Field(default=None, alias="outputFiles")
    warning_on_std_err: DynamicBool | None = Field(default=None, alias="warningOnStdErr")
    fail_fast: DynamicBool = Field(default=True, alias="failFast")
    container_image: str | None = Field(default=None, alias="containerImage")
    task_runner: dict[str, Any] | None = Field(default=None, alias="taskRunner")
    docker: dict[str, Any] | None = None
    runner: str | None = None
    namespace_files: dict[str, Any] | None = Field(default=None, alias="namespaceFiles")
    target_os: str | None = Field(default=None, alias="targetOS")

    def _main_commands(self, ctx: WorkerContext, extra: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def run(self, ctx: RunContext) -> dict[str, Any]:
        wctx = worker_context(ctx)
        workdir = Path(ctx.working_dir)
        extra = {"workingDir": str(workdir), "outputDir": str(workdir)}
        if self.container_image or self.task_runner or self.docker or self.runner:
            ctx.log(
                "INFO",
                "Running as a local process in the worker: containerImage/taskRunner are ignored",
            )
        if self.namespace_files:
            ctx.log("WARN", "namespaceFiles are not supported by Lanner and were not copied")
        self._write_input_files(wctx, workdir, extra)
        lines = [str(wctx.render_with(c, extra)) for c in self.before_commands or []]
        lines += self._main_commands(wctx, extra)
        interpreter = [str(wctx.render_with(part, extra)) for part in self.interpreter]
        if resolve(self.fail_fast, ctx.render_typed) and Path(interpreter[0]).name in _SHELLS:
            lines.insert(0, "set -e")
        env = {"WORKING_DIR": str(workdir), "OUTPUT_DIR": str(workdir)}

        def render(value: Any) -> Any:
            return wctx.render_with(value, extra)

        for key, value in (resolve(self.env, render, items=render) or {}).items():
            env[str(key)] = str(value)
        warn = bool(resolve(self.warning_on_std_err, ctx.render_typed))
        result = wctx.run_process(
            [*interpreter, "\n".join(lines)], env, stderr_level="WARN" if warn else "ERROR"
        )
        outputs: dict[str, Any] = {
            "vars": result.vars,
            "exitCode": result.exit_code,
            "outputFiles": self._collect_output_files(wctx, workdir, extra),
        }
        if result.killed:
            return outputs
        if result.exit_code != 0:
            raise TaskFailed(f"Command failed with exit code {result.exit_code}", outputs)
        if warn and result.stderr_lines:
            return FinalOutputs(outputs, "WARNING")
        return outputs

    def _write_input_files(self, ctx: WorkerContext, workdir: Path, extra: dict[str, Any]) -> None:
        write_input_files(ctx, workdir, extra, self.input_files)

    def _collect_output_files(
        self, ctx: WorkerContext, workdir: Path, extra: dict[str, Any]
    ) -> dict[str, str]:
        return collect_output_files(ctx, workdir, extra, self.output_files)


def write_input_files(
    ctx: WorkerContext, workdir: Path, extra: dict[str, Any], files: dict[str, str] | str | None
) -> None:
    """``inputFiles`` (a map, or a template rendering to one, of file name to content or to a
    ``lanner://``/``kestra://`` URI) written into ``workdir``."""
    if files is None:
        return
    if isinstance(files, str):
        rendered = ctx.render_with(files, extra)
        files = json.loads(rendered) if isinstance(rendered, str) else rendered
        if not isinstance(files, dict):
            raise TaskFailed("'inputFiles' must be a map of file name to content")
    for name, content in files.items():
        target = (workdir / str(ctx.render_with(name, extra))).resolve()
        if workdir.resolve() not in target.parents:
            raise TaskFailed(f"input file '{name}' is outside the working directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        text = str(ctx.render_with(content, extra))
        if text.startswith(("lanner://", "kestra://")):
            ctx.download(text.replace("kestra://", "lanner://", 1), str(target))
        else:
            target.write_text(text)


def collect_output_files(
    ctx: WorkerContext, workdir: Path, extra: dict[str, Any], patterns: list[str] | None
) -> dict[str, str]:
    """Files of ``workdir`` matching the ``outputFiles`` globs, stored: relative name -> URI."""
    found: dict[str, str] = {}
    for pattern in patterns or []:
        glob = str(ctx.render_with(pattern, extra))
        for path in sorted(workdir.glob(glob)):
            if path.is_file():
                name = path.relative_to(workdir).as_posix()
                if name not in found:
                    found[name] = ctx.put_path(name, str(path))
    return found


class Commands(_ScriptTask):
    """Runs shell ``commands``."""

    TYPE: ClassVar[str] = "lanner.scripts.shell.Commands"
    commands: list[str] | str

    def _main_commands(self, ctx: WorkerContext, extra: dict[str, Any]) -> list[str]:
        commands = [self.commands] if isinstance(self.commands, str) else self.commands
        return [str(ctx.render_with(c, extra)) for c in commands]


class Script(_ScriptTask):
    """Runs the Python ``script`` with the worker's own interpreter (``sys.executable``), so
    packages installed beside Lanner (such as ``kestra``) are importable."""

    TYPE: ClassVar[str] = "lanner.scripts.python.Script"
    script: str

    def _main_commands(self, ctx: WorkerContext, extra: dict[str, Any]) -> list[str]:
        path = Path(ctx.working_dir) / f"_script_{new_id()[:8]}.py"
        path.write_text(str(ctx.render_with(self.script, extra)))
        return [f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"]


PLUGINS: list[type] = [Commands, Script]
