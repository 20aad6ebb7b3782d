"""Lanner executor component."""
