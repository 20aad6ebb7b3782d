"""The chart's tests: helm (built once into the cache by tests/infra/tools.py) renders it."""

from __future__ import annotations

import pytest

from tests.helm.chart import Helm
from tests.infra.tools import fetch_helm


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(fetch_helm())
