"""``make bench``: throughput and latency of ``lanner server local`` (see ``__main__``)."""
