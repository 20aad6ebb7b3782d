"""``lanner server ...``: run the components. ``local`` runs all of them in one process."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

log = logging.getLogger("lanner.server")


@click.group()
def server() -> None:
    """Run Lanner's components."""


@server.command()
@click.option(
    "--flows-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Deploy every *.yml / *.yaml flow of this directory at start.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite database and internal storage live (default ~/.lanner).",
)
@click.option("--host", default=None, help="Address the API listens on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port of the API (default 8080).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML configuration file.",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None)
@click.option(
    "--management-port",
    type=int,
    default=None,
    help="Serve /health/* and /metrics without authentication on this port too (0: any free "
    "one). Default: LANNER_METRICS_PORT / metrics_port when set, else none (the API port "
    "answers them; with auth on, /metrics there needs a credential).",
)
def local(
    flows_dir: Path | None,
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    config_file: Path | None,
    log_format: str | None,
    management_port: int | None,
) -> None:
    """Everything in one process: API, executor, worker, scheduler, indexer on SQLite."""
    from common.settings import Settings

    overrides: dict[str, Any] = {}
    if management_port is not None:
        overrides["metrics_port"] = management_port
    try:
        settings = Settings.load(
            config_file, data_dir=data_dir, host=host, port=port, log_format=log_format, **overrides
        )
    except ValueError as exc:
        raise click.UsageError(f"configuration: {exc}") from exc
    if settings.queue != "sqlite":
        raise click.UsageError(
            f"queue: {settings.queue}: `lanner server local` runs every component on the "
            "embedded SQLite queue; remove `queue` from the configuration (or LANNER_QUEUE)"
        )
    _configure_logging(settings.log_format)
    app = LocalServer(settings)
    try:
        app.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot start: {exc}. Is another Lanner already using {settings.data_dir} or port "
            f"{settings.port}? Stop it or pass --data-dir / --port."
        ) from exc
    if flows_dir is not None:
        app.deploy_dir(flows_dir)
    app.serve()


class LocalServer:
    """The embedded deployment: every component on one SQLite database and a local directory."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.components: list[Any] = []
        self.queue: Any = None

    def start(self) -> None:
        from common.backends import Backends, create_queue, create_storage
        from common.queue.sqlite import SqliteDatabase, SqliteQueue
        from common.repository.sqlite import sqlite_repositories
        from common.secrets import key_file_key
        from executor import CoreConfig, EmbeddedExecutor
        from indexer import Indexer
        from worker import Worker

        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not settings.encryption_key:
            settings.encryption_key = key_file_key(settings.data_dir)
        self.db = SqliteDatabase(str(settings.sqlite_path))
        queue = create_queue(settings, db=self.db)
        assert isinstance(queue, SqliteQueue)  # `local` checked settings.queue
        repositories = sqlite_repositories(self.db)
        storage = create_storage(settings)
        self.backends = Backends(queue, repositories, storage, settings)
        self.worker = Worker(queue, storage, settings, repositories=repositories)
        config = CoreConfig(globals=settings.globals, envs=settings.template_envs(os.environ))
        self.executor = EmbeddedExecutor(
            self.db,
            queue,
            repositories.flows,
            config,
            local_worker_ids=lambda: {self.worker.id},
            worker_dead_after=settings.worker_dead_after_seconds,
            storage=storage,
        )
        self.indexer = Indexer(queue, repositories)
        self.components = [self.indexer, self.worker, self.executor]
        try:
            from scheduler import Scheduler

            self.components.append(Scheduler(queue, repositories, settings))
        except ImportError:
            log.warning("scheduler not available: Schedule triggers will not fire")
        for component in self.components:
            component.start()
        # after the components subscribed: their groups hold back what they have not consumed
        queue.start_purging(
            interval=settings.queue_purge_interval_seconds, retain=settings.queue_retain_records
        )
        self.queue = queue

    def deploy_dir(self, flows_dir: Path) -> None:
        from common.errors import FlowValidationError
        from common.flow import parse_flow
        from common.flow.store import save_flow

        if not flows_dir.is_dir():
            raise click.ClickException(f"--flows-dir {flows_dir} is not a directory")
        files = sorted([*flows_dir.rglob("*.yml"), *flows_dir.rglob("*.yaml")])
        for path in files:
            source = path.read_text()
            try:
                flow = parse_flow(source, check_templates=True)
            except FlowValidationError as exc:
                click.echo(f"{path}: not deployed: {exc}", err=True)
                continue
            record = save_flow(self.backends, self.settings.tenant, flow, source)
            click.echo(f"deployed {flow.namespace}.{flow.id} (revision {record.revision})")

    def serve(self) -> None:
        import uvicorn

        from webserver.app import create_app

        app = create_app(self.settings, self.backends)
        management = self._management(app)
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            access_log=False,
        )
        server_ = _draining_server(config)
        click.echo(
            f"Lanner is running: API http://{self.settings.host}:{self.settings.port}/api/v1 "
            f"(docs /api/docs), data in {self.settings.data_dir}"
        )
        try:
            server_.run()
        finally:
            if management is not None:
                management.stop()
            self.stop()
        if not server_.started:
            raise click.ClickException(
                f"the API could not listen on {self.settings.host}:{self.settings.port}: is the "
                "port in use? Pass --port to choose another."
            )

    def _management(self, app: Any) -> Any:
        """The management port (``/health/*``, ``/metrics``, no authentication) when
        ``metrics_port`` was given: a default one would collide between local servers."""
        from common.cli.server_web import _repository_probe
        from common.management import ManagementServer

        if "metrics_port" not in self.settings.model_fields_set:
            return None
        management = ManagementServer(
            "local",
            self.settings.metrics_port,
            ready=_repository_probe(self.backends),
            metrics=app.state.http_metrics.exposition,
        )
        try:
            management.start()
        except OSError as exc:
            raise click.ClickException(
                f"the management port {self.settings.metrics_port} is not free ({exc}): pass "
                "--management-port (0 takes any free one)"
            ) from exc
        click.echo(f"management port {management.port}: /health/live, /health/ready, /metrics")
        return management

    def stop(self) -> None:
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("error while stopping %s", type(component).__name__)
        self.components = []
        if self.queue is not None:
            self.queue.close()
            self.queue = None


def _draining_server(config: Any) -> Any:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM / SIGINT once it stopped serving, which ends the process
        before the components stop: the worker would never drain. Here the signal only stops
        serving; ``serve`` then stops every component and returns."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return DrainingServer(config)


def _configure_logging(fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from common.logging_setup import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


# the components of the high-availability deployment (their own modules)
def _register_web_commands() -> None:
    from common.cli.server_kafka import (
        executor_command,
        scheduler_command,
        standalone_command,
        worker_command,
    )
    from common.cli.server_web import indexer_command, webserver_command

    server.add_command(webserver_command)
    server.add_command(indexer_command)
    server.add_command(executor_command)
    server.add_command(worker_command)
    server.add_command(scheduler_command)
    server.add_command(standalone_command)


_register_web_commands()
