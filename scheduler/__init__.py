"""Lanner scheduler component."""
