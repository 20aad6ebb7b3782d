"""The backends a component runs on, chosen by the settings.

Components never import a backend module (``common.queue.sqlite``, ``common.queue.kafka``...):
they receive a ``Backends`` or a ``Queue`` built here from ``Settings``, so the same component
code runs embedded on SQLite and highly available on Kafka. Backend modules are imported only
when chosen: the embedded server does not need the Kafka client installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.queue.base import Queue
from common.repository.base import Repositories
from common.settings import Settings
from common.storage.base import Storage

if TYPE_CHECKING:
    from common.flow.topic_source import TopicFlowSource
    from common.queue.sqlite import SqliteDatabase


@dataclass
class Backends:
    """Queue, repositories and internal storage chosen by the settings.

    ``flows``: on Kafka, the flows as the ``flows`` topic holds them (a started
    ``TopicFlowSource``). The webserver then creates executions from it and treats the
    repository as a copy the indexer fills: creating, killing, resuming or restarting an
    execution never needs the repository to answer (Elasticsearch may be down). None: the
    repository is the source of truth (the embedded server), as before.
    """

    queue: Queue
    repositories: Repositories
    storage: Storage
    settings: Settings
    flows: TopicFlowSource | None = None


def create_repositories(settings: Settings, *, db: SqliteDatabase | None = None) -> Repositories:
    """The repositories ``settings.repository`` names.

    ``sqlite``: on ``db`` when given, else on ``settings.sqlite_path``. ``elasticsearch``: on
    ``settings.elasticsearch_url`` (one URL or a comma-separated list), in the indices named
    ``settings.elasticsearch_index_prefix`` + kind, created now or, while Elasticsearch does
    not answer, on first use.
    """
    if settings.repository == "elasticsearch":
        from common.repository.elasticsearch import connect

        return connect(
            settings.elasticsearch_url,
            settings.elasticsearch_index_prefix,
            log_retention_days=settings.elasticsearch_logs_retention_days,
            request_timeout=settings.elasticsearch_request_timeout_seconds,
        )
    from common.queue.sqlite import SqliteDatabase
    from common.repository.sqlite import sqlite_repositories

    if db is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = SqliteDatabase(str(settings.sqlite_path))
    return sqlite_repositories(db)


def create_storage(settings: Settings) -> Storage:
    """The internal storage ``settings.storage`` names."""
    if settings.storage == "gcs":
        from common.storage.gcs import GcsStorage, gcs_client

        return GcsStorage(
            settings.gcs_bucket or "",
            settings.gcs_prefix,
            client=gcs_client(settings.gcs_project),
        )
    from common.storage.local import LocalStorage

    return LocalStorage(settings.storage_dir)


def create_queue(
    settings: Settings,
    *,
    db: SqliteDatabase | None = None,
    client_id: str | None = None,
    storage: Storage | None = None,
) -> Queue:
    """The queue ``settings.queue`` names.

    ``sqlite``: on ``db`` when given (the embedded server shares one database between the queue,
    the executor's state and the repositories, so one transaction spans them), else on
    ``settings.sqlite_path``. ``kafka``: on ``settings.kafka_bootstrap_servers``, with the
    topics ``lanner kafka init`` created under ``settings.kafka_topic_prefix``; ``client_id``
    names this process in the brokers' logs. With ``storage``, a Kafka record over
    ``queue_max_record_bytes`` travels through it (``common.queue.offload``) instead of failing.
    """
    if settings.queue == "kafka":
        from common.queue.kafka import KafkaQueue

        kafka = KafkaQueue(
            settings.kafka_bootstrap_servers,
            prefix=settings.kafka_topic_prefix,
            client_id=client_id,
            max_record_bytes=settings.queue_max_record_bytes,
            consumer_config=settings.kafka_consumer_config,
            producer_config=settings.kafka_producer_config,
        )
        if storage is None:
            return kafka
        from common.queue.offload import OffloadingQueue

        return OffloadingQueue(kafka, storage, settings.queue_max_record_bytes)
    from common.queue.sqlite import SqliteDatabase, SqliteQueue

    if db is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = SqliteDatabase(str(settings.sqlite_path))
    return SqliteQueue(
        db,
        partitions=settings.queue_partitions,
        session_timeout=settings.queue_session_timeout_seconds,
        max_record_bytes=settings.queue_max_record_bytes,
    )
