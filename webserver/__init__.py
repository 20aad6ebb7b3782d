"""Lanner webserver component."""
