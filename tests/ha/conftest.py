"""Fixtures of the high-availability suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ha.cluster import Cluster


@pytest.fixture
def cluster(kafka_bootstrap_servers: str, unique_name: str, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(kafka_bootstrap_servers, unique_name + ".", tmp_path)
    yield made
    made.close()
