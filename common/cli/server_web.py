"""``lanner server webserver`` and ``lanner server indexer``: the API and the indexer as their own
processes, on the queue and repository the settings name (SQLite: a single webserver, its indexer
inside or beside it on the same data dir; Elasticsearch: any number of webservers and indexers).

Each creates the Kafka topics it misses, serves ``/health/live``, ``/health/ready`` (with the
reason when not ready: repository, Kafka, live feeds, indexer) and ``/metrics`` on
``LANNER_METRICS_PORT``, and logs one start line naming its role, backends and partitions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from common.cli.component import Component, ensure_kafka_topics, serve
from common.management import ReadinessCheck
from common.settings import Settings

log = logging.getLogger("lanner.server")

INDEXER_ASSIGNMENT_WAIT = 15.0  # seconds the start waits for the indexer's first partitions
API_START_TIMEOUT = 30.0

_config_option = click.option(
    "--config",
    "config_file",
    envvar="LANNER_CONFIG",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML configuration file.",
)
_log_format_option = click.option("--log-format", type=click.Choice(["text", "json"]), default=None)


# ---------------------------------------------------------------- backends and checks


@dataclass
class _Opened:
    """The backends of a process and what to close at its end."""

    backends: Any  # common.backends.Backends
    closers: list[Callable[[], None]]


def _open(settings: Settings, role: str) -> _Opened:
    from common.backends import Backends, create_queue, create_repositories, create_storage
    from common.queue.sqlite import SqliteDatabase
    from common.secrets import key_file_key

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.encryption_key:
        settings.encryption_key = key_file_key(settings.data_dir)
    closers: list[Callable[[], None]] = []
    db = SqliteDatabase(str(settings.sqlite_path))
    closers.append(db.close)
    storage = create_storage(settings)
    # with the storage: records over the Kafka size limit travel through it, both ways
    queue = create_queue(settings, db=db, client_id=f"lanner-{role}", storage=storage)
    closers.insert(0, queue.close)
    backends = Backends(queue, create_repositories(settings, db=db), storage, settings)
    return _Opened(backends, closers)


class _Resources:
    """First component started, last stopped: closes the queue and the database."""

    def __init__(self, closers: Sequence[Callable[[], None]]) -> None:
        self.closers = list(closers)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for close in self.closers:
            try:
                close()
            except Exception:  # noqa: BLE001 - keep closing the others
                log.exception("error while closing %s", close)


class _KafkaProbe:
    """Readiness: the brokers answer a metadata request within a few seconds."""

    def __init__(self, settings: Settings) -> None:
        self.servers = settings.kafka_bootstrap_servers
        self.topic = settings.kafka_topic_prefix + "executor"
        self._admin: Any = None

    def __call__(self) -> str | None:
        from common.queue.kafka_client import create_admin

        try:
            if self._admin is None:
                self._admin = create_admin(self.servers)
            metadata = self._admin.list_topics(self.topic, timeout=3)
        except Exception as exc:  # noqa: BLE001 - any failure means Kafka is not usable
            return f"Kafka unreachable at {self.servers}: {exc}"
        if not metadata.brokers:
            return f"Kafka unreachable at {self.servers}: no broker answers"
        return None


def _repository_probe(backends: Any) -> ReadinessCheck:
    from common.repository.base import ExecutionQuery

    def check() -> str | None:
        try:
            backends.repositories.executions.search(ExecutionQuery(size=1))
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return f"repository ({backends.settings.repository}) unavailable: {exc}"
        return None

    return check


def _all_of(checks: Sequence[ReadinessCheck]) -> ReadinessCheck:
    def check() -> str | None:
        reasons = [reason for reason in (c() for c in checks) if reason is not None]
        return "; ".join(reasons) if reasons else None

    return check


def _base_checks(settings: Settings, backends: Any) -> list[ReadinessCheck]:
    checks = [_repository_probe(backends)]
    if settings.queue == "kafka":
        checks.append(_KafkaProbe(settings))
    return checks


def _prepare(config_file: Path | None, log_format: str | None, **overrides: Any) -> Settings:
    import faulthandler
    import signal

    from common.cli.server import _configure_logging

    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: every thread's stack, to the log

    try:
        settings = Settings.load(config_file, log_format=log_format, **overrides)
    except ValueError as exc:
        raise click.UsageError(f"configuration: {exc}") from exc
    _configure_logging(settings.log_format)
    if settings.queue == "kafka":
        ensure_kafka_topics(settings)
    return settings


# ---------------------------------------------------------------- the indexer


class _IndexerComponent:
    """The indexer thread; ``start`` waits a little for its first partitions (start line)."""

    def __init__(self, indexer: Any) -> None:
        self.indexer = indexer

    def start(self) -> None:
        self.indexer.start()
        self.indexer.assigned.wait(INDEXER_ASSIGNMENT_WAIT)

    def stop(self) -> None:
        self.indexer.stop()

    def not_ready(self) -> str | None:
        return None if self.indexer.running else "indexer stopped (see the log)"

    def partitions(self) -> str:
        from indexer._indexer import describe

        return f"indexer group {self.indexer.group} holds {describe(self.indexer.held)}"


def _indexer(settings: Settings, backends: Any) -> Any:
    from indexer import Indexer

    # Elasticsearch takes the entities of a bulk (executions, logs...) in parallel requests
    parallel = settings.repository == "elasticsearch"
    return Indexer(backends.queue, backends.repositories, parallel_writes=parallel)


@click.command("indexer")
@_config_option
@_log_format_option
def indexer_command(config_file: Path | None, log_format: str | None) -> None:
    """The indexer alone: copies flows, executions, logs, metrics and workers into the
    repository (the webserver runs one inside unless --no-indexer)."""

    settings = _prepare(config_file, log_format)
    if settings.queue == "kafka":
        # a dead indexer's partitions move to the others after this, not after the client's
        # 45 s (tests/faults: a killed indexer's logs were searchable only ~45 s later)
        session_ms = max(1000, int(settings.indexer_session_timeout_seconds * 1000))
        consumer_config = {
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(200, session_ms // 5),
            **settings.kafka_consumer_config,
        }
        settings = settings.model_copy(update={"kafka_consumer_config": consumer_config})
    opened = _open(settings, "indexer")
    component = _IndexerComponent(_indexer(settings, opened.backends))
    serve(
        "indexer",
        settings,
        [_Resources(opened.closers), component],
        ready=_all_of([*_base_checks(settings, opened.backends), component.not_ready]),
        partitions=component.partitions,
    )


# ---------------------------------------------------------------- the webserver


class _Api:
    """uvicorn serving the app on a thread of its own (signals stay with ``serve``)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="lanner-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + API_START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise click.ClickException(
                    f"the API could not listen on {self.settings.host}:{self.settings.port}: "
                    "is the port in use? Pass --port (or LANNER_PORT) to choose another."
                )
            self._thread.join(0.05)
        log.info("webserver: API on http://%s:%d/api/v1", self.settings.host, self.settings.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)

    def not_ready(self) -> str | None:
        if self._server is None or not self._server.started:
            return "API not listening yet"
        return None


class _LiveFeeds:
    """The follow streams' consumers: started and ready (every partition held) before the API
    listens, so the first stream never waits and readiness means follow works."""

    def __init__(self, feeds: dict[str, Any]) -> None:
        self.feeds = feeds

    def start(self) -> None:
        from webserver._live import READY_SECONDS

        for feed in self.feeds.values():
            feed.start()
        for feed in self.feeds.values():
            if not feed.wait_ready(READY_SECONDS):
                raise click.ClickException(f"cannot start: {feed.not_ready()}")

    def stop(self) -> None:
        for feed in self.feeds.values():
            feed.stop()

    def not_ready(self) -> str | None:
        reasons = [r for r in (feed.not_ready() for feed in self.feeds.values()) if r]
        return "; ".join(reasons) if reasons else None

    def partitions(self) -> str:
        return ", ".join(
            f"{topic} {feed.queue.partitions(topic)} (one consumer)"
            for topic, feed in self.feeds.items()
        )


@click.command("webserver")
@click.option("--host", default=None, help="Address the API listens on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port of the API (default 8080).")
@click.option(
    "--no-indexer",
    is_flag=True,
    help="Do not run the indexer inside (run `lanner server indexer` beside it).",
)
@_config_option
@_log_format_option
def webserver_command(
    host: str | None,
    port: int | None,
    no_indexer: bool,
    config_file: Path | None,
    log_format: str | None,
) -> None:
    """The REST API and the UI: reads from the repository, writes to the queue; follow streams
    read the `executions` topic through one consumer per process."""
    settings = _prepare(config_file, log_format, host=host, port=port)
    components, ready, partitions = build_webserver(settings, with_indexer=not no_indexer)
    serve("webserver", settings, components, ready=ready, partitions=partitions)


def build_webserver(
    settings: Settings, *, with_indexer: bool = True
) -> tuple[list[Component], ReadinessCheck, Callable[[], str]]:
    """The webserver's components (resources, indexer, live feeds, API), its readiness check and
    its partition description; ``lanner server webserver`` and ``standalone`` run them."""
    from prometheus_client import REGISTRY

    from webserver.app import create_app
    from webserver.deps import live_feeds
    from webserver.metrics import HttpMetrics

    opened = _open(settings, "webserver")
    backends = opened.backends
    components: list[Component] = [_Resources(opened.closers)]
    if settings.queue == "kafka":
        # executions are created from the flows topic: Elasticsearch may be down meanwhile
        from common.flow.topic_source import TopicFlowSource
        from common.queue.kafka_topics import topic_name

        backends.flows = TopicFlowSource(
            settings.kafka_bootstrap_servers, topic_name("flows", settings.kafka_topic_prefix)
        )
        components.append(backends.flows)
    token_store = None
    if settings.auth.enabled and settings.queue == "kafka":
        # every replica reads the compacted `tokens` topic: revocations reach them all
        from common.auth.kafka_store import KafkaTokenStore

        token_store = KafkaTokenStore.from_settings(settings)
        components.append(token_store)
    app = create_app(
        settings, backends, http_metrics=HttpMetrics(REGISTRY), token_store=token_store
    )
    feeds = _LiveFeeds(live_feeds(app))
    api = _Api(app, settings)
    checks = _base_checks(settings, backends)
    indexer: _IndexerComponent | None = None
    if with_indexer:
        indexer = _IndexerComponent(_indexer(settings, backends))
        components.append(indexer)
        checks.append(indexer.not_ready)
    components += [feeds, api]
    checks += [feeds.not_ready, api.not_ready]
    ready = _all_of(checks)
    app.state.readiness = ready  # the API's own /health/ready (the UI's banner) says it all
    if backends.flows is not None:
        # on Kafka, writes and follow go on while the repository is down: an Elasticsearch
        # outage must not take every webserver out of its Service (the management port's
        # readiness, which an orchestrator probes), only make reads answer 503
        ready = _all_of(checks[1:])  # the first check is the repository's (_base_checks)

    def partitions() -> str:
        described = f"live feeds: {feeds.partitions()}"
        if indexer is not None:
            described += f"; {indexer.partitions()}"
        return described

    return components, ready, partitions
