"""Lanner indexer component."""
