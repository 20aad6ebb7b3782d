"""Lanner indexer component: copies the queue into the repository."""

from ._indexer import Indexer as Indexer

__all__ = ["Indexer"]
