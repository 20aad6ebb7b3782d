"""The Grafana dashboard of the chart is built only on metrics that the components export."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from tests.helm.chart import CHART

DASHBOARD = CHART / "dashboards" / "lanner.json"
# every module that registers metrics on the process registry the management port serves
METRIC_MODULES = (
    "executor.metrics",
    "worker._metrics",
    "scheduler._metrics",
    "indexer._indexer",
    "common.repository.elasticsearch_store",
)
# the sample names prometheus_client exposes for each type of metric family
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}
NAME = re.compile(r"\blanner_[a-z0-9_]+\b")


def exported_names() -> set[str]:
    """The sample names of every Lanner metric, as /metrics writes them."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    from webserver.metrics import HttpMetrics

    registries = [REGISTRY, HttpMetrics(CollectorRegistry()).registry]
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return {n for n in names if n.startswith("lanner_")}


def _expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and "query" in value:
                yield value["query"]
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


def test_every_metric_of_the_dashboard_is_exported_by_a_component() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in _expressions(dashboard) for name in NAME.findall(expr)}
    exported = exported_names()
    assert used, "the dashboard queries no lanner_* metric"
    assert sorted(used - exported) == [], f"exported: {sorted(exported)}"
    # and it covers every component
    for component in ("executor", "worker", "scheduler", "indexer", "webserver"):
        assert any(n.startswith(f"lanner_{component}_") for n in used), component


def test_the_collected_names_are_those_a_management_port_serves() -> None:
    """The suffix rules above match prometheus_client's exposition (a counter's ``_total``)."""
    from prometheus_client import generate_latest

    from executor.metrics import EXECUTOR_METRICS

    EXECUTOR_METRICS.ended.labels(state="SUCCESS", namespace="tests.helm", flow="dashboard")
    text = generate_latest(REGISTRY).decode()
    served = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert "lanner_executor_executions_ended_total" in served
    assert {n for n in served if n.startswith("lanner_")} <= exported_names()
