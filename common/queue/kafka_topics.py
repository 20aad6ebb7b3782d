"""The Kafka topic table: every topic Lanner uses, what its key means and how it is cleaned.

    topic                     key                     cleanup  partitions
    flows                     tenant/namespace/flowId compact   8
    executor                  execution id            delete   16
    executor-flows            tenant/namespace/flowId delete    8   (created/ended notices)
    executions                execution id            compact  16
    worker-tasks[.<group>]    task run id             delete   16
    worker-triggers[.<group>] trigger uid             delete    8
    worker-jobs               task run id             compact  16
    workers                   worker id               compact   4
    kills                     execution id            delete    1   (read by every worker)
    triggers                  trigger uid             compact   8
    logs                      execution id            delete    8
    metrics                   execution id            delete    8
    tokens                    token id                compact   1   (API tokens, revocations)

Full names carry a prefix (``Settings.kafka_topic_prefix``, default ``lanner.``). Every input
of the executor is keyed by execution id so one partition owner sees each execution in order;
the Faust executor's own tables (changelog topics) are declared by Faust, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

CleanupPolicy = Literal["compact", "delete"]

DEFAULT_PREFIX = "lanner."


@dataclass(frozen=True)
class TopicSpec:
    """One logical topic of DESIGN.md's table."""

    name: str
    key: str
    value: str
    cleanup_policy: CleanupPolicy
    partitions: int
    per_worker_group: bool = False
    config: dict[str, str] = field(default_factory=dict)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("flows", "tenant/namespace/flowId", "flow source + revision", "compact", 8),
    TopicSpec("executor", "execution id", "executor inputs", "delete", 16),
    TopicSpec(
        "executor-flows",
        "tenant/namespace/flowId",
        "execution created / ended notices (concurrency, flow triggers)",
        "delete",
        8,
    ),
    TopicSpec("executions", "execution id", "latest execution snapshot", "compact", 16),
    TopicSpec("worker-tasks", "task run id", "task to run", "delete", 16, per_worker_group=True),
    TopicSpec(
        "worker-triggers", "trigger uid", "polling trigger", "delete", 8, per_worker_group=True
    ),
    TopicSpec("worker-jobs", "task run id", "which worker runs it", "compact", 16),
    TopicSpec("workers", "worker id", "heartbeat", "compact", 4),
    TopicSpec("kills", "execution id", "kill order", "delete", 1),
    TopicSpec("triggers", "trigger uid", "trigger state", "compact", 8),
    TopicSpec("logs", "execution id", "log entries", "delete", 8),
    TopicSpec("metrics", "execution id", "task metrics", "delete", 8),
    # read whole by every webserver (common.auth.kafka_store): one partition keeps it in order
    TopicSpec("tokens", "token id", "API token record (revoked or not)", "compact", 1),
)

BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in TOPICS}


@dataclass(frozen=True)
class KafkaTopic:
    """A concrete topic to create: full name, partitions, replication and topic configs."""

    name: str
    spec: TopicSpec
    partitions: int
    replication_factor: int
    config: dict[str, str]


def split_group(logical: str) -> tuple[str, str | None]:
    """``worker-tasks.gpu`` -> ``("worker-tasks", "gpu")``; other names have no group."""
    base, dot, group = logical.partition(".")
    spec = BY_NAME.get(base)
    if dot and group and spec is not None and spec.per_worker_group:
        return base, group
    return logical, None


def topic_name(logical: str, prefix: str = DEFAULT_PREFIX, group: str | None = None) -> str:
    """``topic_name("worker-tasks", "lanner.", "gpu")`` -> ``lanner.worker-tasks.gpu``.

    The group may also come inside the logical name, as ``common.queue.base.worker_tasks_topic``
    writes it (``worker-tasks.gpu``).
    """
    if group is None:
        logical, group = split_group(logical)
    spec = BY_NAME.get(logical)
    if spec is None:
        raise KeyError(f"unknown topic {logical!r}; known: {', '.join(BY_NAME)}")
    if group and not spec.per_worker_group:
        raise ValueError(f"topic {logical!r} is not per worker group")
    return f"{prefix}{logical}.{group}" if group else f"{prefix}{logical}"


def plan_topics(
    prefix: str = DEFAULT_PREFIX,
    *,
    replication_factor: int = 1,
    partitions: int | None = None,
    worker_groups: Iterable[str] = (),
) -> list[KafkaTopic]:
    """The topics ``lanner kafka init`` creates.

    ``partitions`` overrides every default (small test clusters); ``min.insync.replicas`` is 2
    when the replication factor allows it, so an ``acks=all`` write survives one broker loss.
    """
    groups = sorted(set(worker_groups))
    min_isr = "2" if replication_factor >= 3 else "1"
    planned = []
    for spec in TOPICS:
        config = {"cleanup.policy": spec.cleanup_policy, "min.insync.replicas": min_isr}
        config.update(spec.config)
        for group in [None, *groups] if spec.per_worker_group else [None]:
            planned.append(
                KafkaTopic(
                    topic_name(spec.name, prefix, group),
                    spec,
                    partitions or spec.partitions,
                    replication_factor,
                    config,
                )
            )
    return planned
