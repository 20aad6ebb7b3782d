"""What every ``lanner server <component>`` does around its component.

Load the settings, create any missing Kafka topic, serve the management port, log one line
naming the role, the backends and the partitions, start, then wait for SIGTERM or SIGINT and
stop (a component's ``stop`` drains: a worker hands back what still runs).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import click

from common.management import ManagementServer, ReadinessCheck
from common.settings import Settings

log = logging.getLogger("lanner.server")


class Component(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


def ensure_kafka_topics(settings: Settings, worker_groups: Sequence[str] = ()) -> None:
    """Creates the topics `lanner kafka init` would and that are missing (idempotent)."""
    from common.errors import QueueError
    from common.queue.kafka_client import broker_count, create_admin, ensure_topics
    from common.queue.kafka_topics import plan_topics

    try:
        admin = create_admin(settings.kafka_bootstrap_servers)
        replication = min(3, broker_count(admin))
        plan = plan_topics(
            settings.kafka_topic_prefix,
            replication_factor=replication,
            worker_groups=worker_groups,
        )
        ensure_topics(admin, plan)
    except QueueError as exc:
        raise click.ClickException(
            f"{exc}. Is Kafka running at {settings.kafka_bootstrap_servers}? Set "
            "LANNER_KAFKA_BOOTSTRAP_SERVERS (or kafka_bootstrap_servers in --config)."
        ) from exc


def describe_backends(settings: Settings) -> str:
    if settings.queue == "kafka":
        queue = f"kafka {settings.kafka_bootstrap_servers} prefix {settings.kafka_topic_prefix}"
    else:
        queue = f"sqlite {settings.sqlite_path}"
    return f"queue {queue}, repository {settings.repository}, storage {settings.storage}"


def serve(
    role: str,
    settings: Settings,
    components: Sequence[Component],
    *,
    ready: ReadinessCheck | None = None,
    partitions: Callable[[], str] | None = None,
) -> None:
    """Runs ``components`` until SIGTERM / SIGINT, with the management port beside them."""
    management = ManagementServer(role, settings.metrics_port, ready=ready)
    try:
        management.start()
    except OSError as exc:
        raise click.ClickException(
            f"the management port {settings.metrics_port} is not free ({exc}): set "
            "LANNER_METRICS_PORT to another port (0 takes any free one)"
        ) from exc
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: %s received, stopping", role, signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started: list[Component] = []
    try:
        for component in components:
            component.start()
            started.append(component)
        log.info(
            "lanner %s started: %s; partitions: %s; management port %d",
            role,
            describe_backends(settings),
            partitions() if partitions else "n/a",
            management.port,
        )
        while not stopping.wait(1.0):
            pass
    finally:
        for component in reversed(started):
            try:
                component.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("error while stopping %s", type(component).__name__)
        management.stop()
        log.info("lanner %s stopped", role)
