"""Configuration: one YAML file plus ``LANNER_...`` environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.auth.config import AuthSettings
from common.secrets import SecretBox


class Settings(BaseSettings):
    # errors never echo the input: it may hold auth.token_secret or a password
    model_config = SettingsConfigDict(
        env_prefix="LANNER_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Path.home() / ".lanner"
    tenant: str = "main"
    host: str = "127.0.0.1"
    port: int = 8080
    log_format: Literal["text", "json"] = "text"
    # queue / repository / storage backends
    queue: Literal["sqlite", "kafka"] = "sqlite"
    repository: Literal["sqlite", "elasticsearch"] = "sqlite"
    storage: Literal["local", "gcs"] = "local"
    # the scheme of the internal-storage URIs Lanner writes (task outputs, FILE inputs); both
    # are always read. `kestra` for flows and scripts that test the `kestra://` prefix
    storage_uri_scheme: Literal["lanner", "kestra"] = "lanner"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = "lanner."
    # librdkafka properties added to every consumer / producer Lanner creates (security settings,
    # session timeouts...); Lanner's own guarantees (acks=all, idempotence, read_committed, no
    # auto-commit) are set after these and cannot be turned off here
    kafka_consumer_config: dict[str, str | int | float | bool] = Field(default_factory=dict)
    kafka_producer_config: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # largest record a queue accepts (key + value bytes); above it: MessageTooLargeError
    queue_max_record_bytes: int = 1_000_000
    # embedded (SQLite) queue: partitions of a new topic; seconds a group member stays without
    # polling; consumed records are purged every interval, keeping the newest of each topic
    queue_partitions: int = 4
    queue_session_timeout_seconds: float = 10.0
    queue_purge_interval_seconds: float = 10.0
    queue_retain_records: int = 1000
    elasticsearch_url: str = "http://127.0.0.1:9200"
    elasticsearch_index_prefix: str = "lanner_"
    # daily log indices older than this many days are deleted (0: keep every day)
    elasticsearch_logs_retention_days: int = 0
    # seconds an Elasticsearch request may take before the read answers 503
    elasticsearch_request_timeout_seconds: float = 10.0
    gcs_bucket: str | None = None
    # the largest FILE input (or request body) the API accepts; larger ones answer 413
    max_upload_bytes: int = 1024 * 1024 * 1024
    gcs_prefix: str = ""  # objects live under this folder of the bucket
    gcs_project: str | None = None  # default: the credentials' project
    # worker
    # /health/live, /health/ready and /metrics of `lanner server <component>` (0: any free port)
    metrics_port: int = 8081
    # a stable name per component instance (pod name): the executor's static group membership
    instance_id: str | None = None
    executor_session_timeout_seconds: float = 6.0  # a dead executor's partitions move after it
    executor_state_retention_seconds: float = 86400.0  # ended executions stay this long
    scheduler_session_timeout_seconds: float = 6.0  # a dead scheduler's flows move after it
    # a polling trigger's evaluation unanswered this long (its worker died) is sent again
    polling_trigger_lock_timeout_seconds: float = 300.0
    indexer_session_timeout_seconds: float = 10.0  # a dead indexer's partitions move after it
    worker_id: str | None = None  # a stable id per worker instance (pod name); default random
    worker_threads: int = 0  # 0 = 8 x cores
    worker_group: str | None = None
    heartbeat_interval_seconds: float = 2.0
    worker_dead_after_seconds: float = 30.0
    # on SIGTERM a worker lets running tasks finish this long, then hands the rest back
    worker_drain_timeout_seconds: float = 30.0
    max_output_bytes: int = 256 * 1024
    # templating: globals.* of Kestra (kestra.variables.globals)
    globals: dict[str, Any] = Field(default_factory=dict)
    # environment variables with these prefixes are exposed as `envs.<name>` (lower case, prefix
    # removed); KESTRA_ keeps Kestra flows that read `envs.*` working unchanged
    env_vars_prefixes: list[str] = Field(default_factory=lambda: ["KESTRA_", "LANNER_ENV_"])
    secret_prefix: str = "SECRET_"
    # Fernet key encrypting SECRET inputs (same on webserver and workers); the embedded server
    # keeps one in <data_dir>/encryption.key when this is not set
    encryption_key: str | None = None
    # authentication (off by default): users, token secret (LANNER_AUTH__ENABLED...)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    def secret_box(self) -> SecretBox | None:
        return SecretBox(self.encryption_key) if self.encryption_key else None

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        if config_file:
            import yaml

            loaded = yaml.safe_load(Path(config_file).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{config_file}: the configuration must be a YAML map")
            values.update(loaded.get("lanner", loaded))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def template_envs(self, environ: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in environ.items():
            for prefix in self.env_vars_prefixes:
                if key.startswith(prefix) and len(key) > len(prefix):
                    out[key[len(prefix) :].lower()] = value
        return out

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "lanner.db"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"
