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
def local(
    flows_dir: Path | None,
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    config_file: Path | None,
    log_format: str | None,
) -> None:
    """Everything in one process: API, executor, worker, scheduler, indexer on SQLite."""
    from common.settings import Settings

    settings = Settings.load(
        config_file, data_dir=data_dir, host=host, port=port, log_format=log_format
    )
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
        from common.backends import Backends, create_queue
        from common.queue.sqlite import SqliteDatabase, SqliteQueue
        from common.repository.sqlite import sqlite_repositories
        from common.secrets import key_file_key
        from common.storage.local import LocalStorage
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
        storage = LocalStorage(settings.storage_dir)
        self.backends = Backends(queue, repositories, storage, settings)
        self.worker = Worker(queue, storage, settings)
        config = CoreConfig(globals=settings.globals, envs=settings.template_envs(os.environ))
        self.executor = EmbeddedExecutor(
            self.db,
            queue,
            repositories.flows,
            config,
            local_worker_ids=lambda: {self.worker.id},
            worker_dead_after=settings.worker_dead_after_seconds,
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
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            access_log=False,
        )
        server_ = uvicorn.Server(config)
        click.echo(
            f"Lanner is running: API http://{self.settings.host}:{self.settings.port}/api/v1 "
            f"(docs /api/docs), data in {self.settings.data_dir}"
        )
        try:
            server_.run()
        finally:
            self.stop()
        if not server_.started:
            raise click.ClickException(
                f"the API could not listen on {self.settings.host}:{self.settings.port}: is the "
                "port in use? Pass --port to choose another."
            )

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


@server.command()
@click.option(
    "--threads", type=click.IntRange(min=0), default=None, help="Tasks run at once (8 x cores)."
)
@click.option(
    "--worker-group",
    default=None,
    help="Worker group key (workerGroup.key): take only the tasks of worker-tasks.<KEY>.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML configuration file.",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None)
def worker(
    threads: int | None, worker_group: str | None, config_file: Path | None, log_format: str | None
) -> None:
    """A worker on Kafka: runs the tasks of its worker group, heartbeats on `workers`.

    LANNER_WORKER_ID names it (stable per instance: its Kafka transactional id and static group
    membership derive from it). On SIGTERM it drains for worker_drain_timeout_seconds, then hands
    back what still runs. Cut off from Kafka for worker_dead_after_seconds, it kills its tasks
    and exits with status 3.
    """
    import faulthandler
    import signal
    import threading

    from common.backends import create_queue
    from common.cli.component import ensure_kafka_topics, serve
    from common.ids import new_id
    from common.settings import Settings
    from worker import Worker, WorkerConfig

    settings = Settings.load(
        config_file, worker_threads=threads, worker_group=worker_group, log_format=log_format
    )
    if settings.queue != "kafka":
        raise click.UsageError(
            f"queue: {settings.queue}: `lanner server worker` runs on Kafka; set "
            "LANNER_QUEUE=kafka (or queue: kafka in --config), or run every component with "
            "`lanner server local`"
        )
    _configure_logging(settings.log_format)
    faulthandler.register(signal.SIGUSR1)  # kill -USR1: every thread's stack, to the log
    settings.worker_id = settings.worker_id or new_id()
    ensure_kafka_topics(settings, [settings.worker_group] if settings.worker_group else [])
    queue = create_queue(settings, client_id=f"lanner-worker-{settings.worker_id}")
    storage = _worker_storage(settings)
    config = WorkerConfig.from_settings(settings)
    config.cut_off_after = settings.worker_dead_after_seconds
    config.kill_history = True  # a kill may predate this process: read every retained one
    component = Worker(queue, storage, config)
    topic = queue.kafka_topic(component.task_topic)  # type: ignore[attr-defined]
    partitions = queue.partitions(component.task_topic)

    def describe() -> str:
        return (
            f"{topic} ({partitions} partitions) shared by consumer group "
            f"{component.consumer_group}; worker id {component.id}, {component.threads} threads"
        )

    def fail_fast() -> None:
        # cut off from Kafka: serve() stops on SIGTERM, like an operator's stop
        component.failed.wait()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=fail_fast, name="lanner-worker-failure", daemon=True).start()
    serve("worker", settings, [component], ready=component.readiness, partitions=describe)
    if component.failed.is_set():
        # no Kafka client may wait for the brokers on the way out (their destructors would)
        log.error("lanner worker %s exits: %s", component.id, component.failure)
        logging.shutdown()
        os._exit(3)
    queue.close()


def _worker_storage(settings: Any) -> Any:
    from common.storage.local import LocalStorage

    if settings.storage != "local":
        raise click.UsageError(
            f"storage: {settings.storage} is not available yet: use storage: local with a "
            "data_dir the executor and the webserver share"
        )
    return LocalStorage(settings.storage_dir)
