"""Lanner worker component."""
