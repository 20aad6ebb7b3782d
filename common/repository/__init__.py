"""Repositories: interfaces (``base``) and backends (``sqlite``, ``elasticsearch``)."""
