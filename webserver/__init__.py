"""Lanner webserver component: the REST API (FastAPI)."""

from .app import create_app as create_app

__all__ = ["create_app"]
