"""``lanner kafka``: the Kafka side of the high-availability deployment."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click


@click.group()
def kafka() -> None:
    """Kafka topics of the high-availability deployment."""


@kafka.command()
@click.option(
    "--config",
    "config_file",
    envvar="LANNER_CONFIG",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Lanner YAML configuration file.",
)
@click.option(
    "--bootstrap-servers",
    help="host:port[,host:port...] (default: LANNER_KAFKA_BOOTSTRAP_SERVERS or the config).",
)
@click.option("--prefix", help="Topic name prefix (default: LANNER_KAFKA_TOPIC_PREFIX, `lanner.`).")
@click.option("--partitions", type=click.IntRange(min=1), help="Override every topic's default.")
@click.option(
    "--replication-factor",
    type=click.IntRange(min=1),
    help="Default: the number of brokers, at most 3.",
)
@click.option(
    "--worker-group",
    "worker_groups",
    multiple=True,
    help="Also create worker-tasks.<group> and worker-triggers.<group> (repeatable).",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds.")
def init(
    config_file: Path | None,
    bootstrap_servers: str | None,
    prefix: str | None,
    partitions: int | None,
    replication_factor: int | None,
    worker_groups: tuple[str, ...],
    timeout: float,
) -> None:
    """Create Lanner's topics with their partitions, replication and cleanup policies.

    Safe to run again: existing topics keep their partitions; their cleanup policy and
    min.insync.replicas are set back to the plan; nothing else changes.
    """
    from common.errors import QueueError
    from common.queue.kafka_client import LOGGER, broker_count, create_admin, ensure_topics
    from common.queue.kafka_topics import plan_topics
    from common.settings import Settings

    settings = Settings.load(
        config_file, kafka_bootstrap_servers=bootstrap_servers, kafka_topic_prefix=prefix
    )
    LOGGER.setLevel(logging.CRITICAL)  # a failure is reported once, below
    try:
        admin = create_admin(settings.kafka_bootstrap_servers)
        replication = replication_factor or min(3, broker_count(admin, timeout))
        topics = plan_topics(
            settings.kafka_topic_prefix,
            replication_factor=replication,
            partitions=partitions,
            worker_groups=worker_groups,
        )
        changes = ensure_topics(admin, topics, timeout)
    except QueueError as exc:
        click.echo(
            f"lanner kafka init: {exc} (bootstrap servers: {settings.kafka_bootstrap_servers})",
            err=True,
        )
        sys.exit(1)
    width = max(len(t.name) for t in topics)
    for topic, change in zip(topics, changes, strict=True):
        line = (
            f"{change.action:<9} {topic.name:<{width}}  partitions={topic.partitions} "
            f"replication={topic.replication_factor} cleanup={topic.spec.cleanup_policy}"
        )
        if change.detail:
            line += f"  ({change.detail})"
        click.echo(line)
    counts = {
        action: sum(c.action == action for c in changes)
        for action in ("created", "updated", "unchanged", "mismatch")
    }
    click.echo(", ".join(f"{n} {action}" for action, n in counts.items() if n))
