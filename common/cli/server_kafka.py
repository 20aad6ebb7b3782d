"""``lanner server executor | worker | scheduler | standalone``: the Kafka components.

Each command builds its component with a ``build_*`` function; ``standalone`` builds them all
(and the webserver of ``server_web``) in one process. The executor is a Faust app, which owns
the main thread and the signals; the other components run on threads beside it.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from common.cli.component import Component, describe_backends, ensure_kafka_topics, serve
from common.cli.server_web import _Resources
from common.management import ManagementServer, ReadinessCheck
from common.settings import Settings

log = logging.getLogger("lanner.server")

# `lanner server worker` exits with this code when it was cut off from Kafka longer than
# worker_dead_after_seconds (its tasks killed): its supervisor restarts it
WORKER_CUT_OFF_EXIT = 3

_config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML configuration file.",
)
_log_format_option = click.option("--log-format", type=click.Choice(["text", "json"]), default=None)


def _load(role: str, config_file: Path | None, **overrides: Any) -> Settings:
    import faulthandler

    from common.cli.server import _configure_logging

    # kill -USR1 <pid>: every thread's stack to the log (a component that stopped working
    # without an error: what it waits on)
    faulthandler.register(signal.SIGUSR1)

    try:
        settings = Settings.load(config_file, **overrides)
    except ValueError as exc:
        raise click.UsageError(f"configuration: {exc}") from exc
    if settings.queue != "kafka":
        raise click.UsageError(
            f"queue: {settings.queue}: `lanner server {role}` runs on Kafka; set "
            "LANNER_QUEUE=kafka (or queue: kafka in --config), or run every component with "
            "`lanner server local`"
        )
    _configure_logging(settings.log_format)
    if not os.environ.get("LANNER_FAUST_INFO"):  # Faust logs every service start at INFO
        for chatty in ("faust", "mode", "aiokafka", "executor.faust_app"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    return settings


def _storage(settings: Settings) -> Any:
    from common.backends import create_storage

    return create_storage(settings)


# ---------------------------------------------------------------- executor


@dataclass
class ExecutorParts:
    app: Any
    coordinator: Any
    queue: Any
    instance: str

    def ready(self) -> str | None:
        if self.app.rebalancing:
            return "rebalancing: partitions are moving between executors"
        return None


def build_executor(settings: Settings) -> ExecutorParts:
    from common.backends import create_queue
    from executor.faust_app import create_faust_app, instance_name
    from executor.liveness_coordinator import LivenessCoordinator

    instance = instance_name(settings)
    queue = create_queue(settings, client_id=f"executor-{instance}")
    coordinator = LivenessCoordinator(
        queue,
        settings.kafka_bootstrap_servers,
        settings.kafka_topic_prefix,
        settings.worker_dead_after_seconds,
        instance,
    )
    app = create_faust_app(settings, group_alive=coordinator.group_alive)
    return ExecutorParts(app, coordinator, queue, instance)


def run_executor(
    role: str,
    settings: Settings,
    parts: ExecutorParts,
    others: Sequence[Component] = (),
    others_ready: Sequence[ReadinessCheck] = (),
) -> None:
    """Runs the Faust app on the main thread until SIGTERM, with ``others`` beside it."""
    from executor.faust_state_dump import ExecutorWorker

    def ready() -> str | None:
        reasons = [r for r in (c() for c in [parts.ready, *others_ready]) if r]
        return "; ".join(reasons) if reasons else None

    management = ManagementServer(role, settings.metrics_port, ready=ready)
    management.start()
    started: list[Component] = []
    try:
        for component in others:
            component.start()
            started.append(component)
        parts.coordinator.start()
        log.info(
            "lanner %s %s started: %s; partitions: executor %d; management port %d",
            role,
            parts.instance,
            describe_backends(settings),
            parts.app.conf.topic_partitions,
            management.port,
        )
        worker = ExecutorWorker(
            parts.app, loglevel="WARNING", override_logging=False, redirect_stdouts=False
        )
        try:
            worker.execute_from_commandline()
        except SystemExit:
            pass
    finally:
        parts.coordinator.stop()
        for component in reversed(started):
            try:
                component.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("error while stopping %s", type(component).__name__)
        parts.queue.close()
        parts.app.lanner_flows.stop()
        parts.app.lanner_trigger_states.close()
        management.stop()
        log.info("lanner %s %s stopped", role, parts.instance)


@click.command("executor")
@_config_option
@_log_format_option
def executor_command(config_file: Path | None, log_format: str | None) -> None:
    """The executor on Kafka (a Faust app): run as many as you like, they share the partitions.

    LANNER_INSTANCE_ID names the instance (stable across restarts: static group membership
    makes a restart take its partitions back at once).
    """
    settings = _load("executor", config_file, log_format=log_format)
    ensure_kafka_topics(settings)
    run_executor("executor", settings, build_executor(settings))


# ---------------------------------------------------------------- worker


@dataclass
class WorkerParts:
    component: Any
    queue: Any
    describe: Callable[[], str]
    closers: list[Callable[[], None]] = field(default_factory=list)


def build_worker(settings: Settings) -> WorkerParts:
    from common.backends import create_queue, create_repositories
    from common.ids import new_id
    from common.secrets import key_file_key
    from worker import Worker, WorkerConfig

    settings.worker_id = settings.worker_id or new_id()
    if not settings.encryption_key:  # SECRET inputs: the key the webserver encrypted them with
        settings.encryption_key = key_file_key(settings.data_dir)
    storage = _storage(settings)
    # a dead worker's task partitions move to the others when it is declared dead, not after
    # the client's default 45 s (static membership keeps them until the session times out)
    session_ms = max(1000, int(settings.worker_dead_after_seconds * 1000))
    consumer_config = {
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(200, session_ms // 5),
        **settings.kafka_consumer_config,
    }
    worker_settings = settings.model_copy(update={"kafka_consumer_config": consumer_config})
    queue = create_queue(
        worker_settings, client_id=f"lanner-worker-{settings.worker_id}", storage=storage
    )
    config = WorkerConfig.from_settings(settings)
    config.cut_off_after = settings.worker_dead_after_seconds
    config.kill_history = True  # a kill may predate this process: read every retained one
    # opened on first use: only the tasks that read or purge history need the repository
    component = Worker(
        queue, storage, config, repositories=functools.partial(create_repositories, settings)
    )
    topic = queue.kafka_topic(component.task_topic)  # type: ignore[attr-defined]
    partitions = queue.partitions(component.task_topic)

    def describe() -> str:
        return (
            f"{topic} ({partitions} partitions) shared by consumer group "
            f"{component.consumer_group}; worker id {component.id}, {component.threads} threads"
        )

    def fail_fast() -> None:
        # cut off from Kafka: stop as an operator's SIGTERM would
        component.failed.wait()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=fail_fast, name="lanner-worker-failure", daemon=True).start()
    return WorkerParts(component, queue, describe, [queue.close])


@click.command("worker")
@click.option(
    "--threads", type=click.IntRange(min=0), default=None, help="Tasks run at once (8 x cores)."
)
@click.option(
    "--worker-group",
    default=None,
    help="Worker group key (workerGroup.key): take only the tasks of worker-tasks.<KEY>.",
)
@_config_option
@_log_format_option
def worker_command(
    threads: int | None, worker_group: str | None, config_file: Path | None, log_format: str | None
) -> None:
    """A worker on Kafka: runs the tasks of its worker group, heartbeats on `workers`.

    LANNER_WORKER_ID names it (stable per instance: its Kafka transactional id and static group
    membership derive from it). On SIGTERM it drains for worker_drain_timeout_seconds, then hands
    back what still runs. Cut off from Kafka for worker_dead_after_seconds, it kills its tasks
    and exits with status 3.
    """
    import faulthandler

    faulthandler.register(signal.SIGUSR1)  # kill -USR1: every thread's stack, to the log
    settings = _load(
        "worker",
        config_file,
        worker_threads=threads,
        worker_group=worker_group,
        log_format=log_format,
    )
    ensure_kafka_topics(settings, [settings.worker_group] if settings.worker_group else [])
    parts = build_worker(settings)
    component = parts.component
    serve("worker", settings, [component], ready=component.readiness, partitions=parts.describe)
    if component.failed.is_set():
        # no Kafka client may wait for the brokers on the way out (their destructors would)
        log.error("lanner worker %s exits: %s", component.id, component.failure)
        logging.shutdown()
        os._exit(WORKER_CUT_OFF_EXIT)
    parts.queue.close()


# ---------------------------------------------------------------- scheduler


def build_scheduler(settings: Settings) -> list[Component]:
    """The scheduler and what closes its resources, in start order."""
    from common.backends import create_queue
    from common.flow.topic_source import TopicFlowSource
    from common.queue.kafka_topics import topic_name
    from scheduler import Scheduler
    from scheduler._ownership import PartitionOwnership
    from scheduler._store import TopicTriggerStore

    servers, prefix = settings.kafka_bootstrap_servers, settings.kafka_topic_prefix
    flows = TopicFlowSource(servers, topic_name("flows", prefix))
    flows.start()
    # a dead replica's flows move to the others after this, not after the client's 45 s
    session_ms = max(1000, int(settings.scheduler_session_timeout_seconds * 1000))
    consumer_config = {
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": max(200, session_ms // 5),
        **settings.kafka_consumer_config,
    }
    queue = create_queue(
        settings.model_copy(update={"kafka_consumer_config": consumer_config}),
        client_id="lanner-scheduler",
        storage=_storage(settings),
    )
    store = TopicTriggerStore(queue, servers, topic_name("triggers", prefix))
    component = Scheduler(
        queue,
        SimpleNamespace(flows=flows),  # type: ignore[arg-type]
        settings,
        store=store,
        ownership=PartitionOwnership(queue, flows),
        # a polling trigger of a worker group no worker started yet: its topic, before the send
        on_worker_group=lambda group: ensure_kafka_topics(settings, [group]),
    )
    return [_Resources([queue.close, flows.stop]), component]


@click.command("scheduler")
@_config_option
@_log_format_option
def scheduler_command(config_file: Path | None, log_format: str | None) -> None:
    """The scheduler on Kafka: fires the Schedule triggers of every flow.

    Flows come from the `flows` topic and trigger states live on the compacted `triggers`
    topic, so it needs no repository. Run as many replicas as you like: each evaluates the
    flows of its partitions of `flows`, and a scheduled execution's id derives from its flow,
    trigger and date, so a hand-over can neither skip a date nor run one twice.
    """
    settings = _load("scheduler", config_file, log_format=log_format)
    ensure_kafka_topics(settings)
    from scheduler import Scheduler

    components = build_scheduler(settings)
    scheduler = components[-1]
    assert isinstance(scheduler, Scheduler)
    serve("scheduler", settings, components, partitions=scheduler.describe_partitions)


# ---------------------------------------------------------------- standalone


@click.command("standalone")
@click.option("--host", default=None, help="Address the API listens on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port of the API (default 8080).")
@_config_option
@_log_format_option
def standalone_command(
    host: str | None, port: int | None, config_file: Path | None, log_format: str | None
) -> None:
    """Every component in one process, on Kafka: executor, worker, scheduler, webserver and
    indexer. Start more of them (`lanner server executor`, `worker`...) beside it to scale."""
    from common.cli.server_web import build_webserver

    settings = _load("standalone", config_file, host=host, port=port, log_format=log_format)
    ensure_kafka_topics(settings, [settings.worker_group] if settings.worker_group else [])
    web, web_ready, _ = build_webserver(settings)
    worker = build_worker(settings)
    scheduler = build_scheduler(settings)
    parts = build_executor(settings)
    others: list[Component] = [
        *web,
        _Resources(worker.closers),
        worker.component,
        *scheduler,
    ]
    run_executor(
        "standalone",
        settings,
        parts,
        others,
        [web_ready, worker.component.readiness],
    )
