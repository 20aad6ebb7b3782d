"""Queues: the interface (``base``) and its backends (``sqlite`` embedded, ``kafka``)."""
