"""The chart's tests: helm (built once into the cache by tests/infra/tools.py) renders it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helm.chart import Helm


@pytest.fixture(scope="session")
def helm(helm_binary: Path) -> Helm:
    return Helm(helm_binary)
