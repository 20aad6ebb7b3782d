"""The Kestra compatibility table (``docs/kestra-compatibility.md``), generated.

Run ``python -m webserver.compat`` to write it, ``python -m webserver.compat --check`` to
fail when it is not current (``tests/webserver/test_compat_table.py`` does the same in
``make test``).

Inputs, all committed so it runs offline and gives the same bytes every time:

* ``docs/kestra-api-operations.json``: Kestra's API operations (method, path, operationId),
  trimmed from Kestra's published OpenAPI (source and version inside);
* ``docs/kestra-core-plugins.txt``: every ``io.kestra.plugin.core.*`` type of Kestra's sources;
* the webserver's routes (``webserver.app.api_routers()``, as mounted under ``/api/v1/{tenant}``)
  and the plugin registry (``common.plugins.registry``);
* the hand-kept reasons below, for what Lanner serves only in part.

An operation is *supported* when a route answers its method and path (path parameters compared
by position, not by name), *partial* when it also has a reason below, *absent* otherwise. A
type is *supported* when the registry resolves it to a class, *partial* with a reason below.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from fastapi.routing import APIRoute

DOCS = Path(__file__).resolve().parents[1] / "docs"
TABLE = DOCS / "kestra-compatibility.md"
OPERATIONS = DOCS / "kestra-api-operations.json"
CORE_PLUGINS = DOCS / "kestra-core-plugins.txt"
COMMAND = "python -m webserver.compat"

# operationId -> what Lanner leaves out
_OWN_REVISION = "its own flow revision only (Kestra: another `revision` makes a new execution)"
PARTIAL_OPERATIONS: dict[str, str] = {
    "killExecution": "subflow executions are always killed (`isOnKillCascade=false` ignored)",
    "restartExecution": _OWN_REVISION,
    "restartExecutionsByIds": _OWN_REVISION,
    "restartExecutionsByQuery": _OWN_REVISION,
    "replayExecution": "no `breakpoints`",
    "unqueueExecution": "to RUNNING or KILLED only",
    "unqueueExecutionsByIds": "to RUNNING or KILLED only",
    "unqueueExecutionsByQuery": "to RUNNING or KILLED only",
    "deleteExecutionsByIds": "`deleteLogs`/`deleteMetrics` ignored: logs and metrics are kept",
    "deleteExecutionsByQuery": "`deleteLogs`/`deleteMetrics` ignored: logs and metrics are kept",
    "deleteExecution": "`deleteLogs`/`deleteMetrics` ignored: logs and metrics are kept",
    "searchExecutionsByFlowId": "`namespace` also matches sub-namespaces (same flow id)",
    "listPlugins": "registered tasks, triggers and conditions; no icons, versions, manifests",
    "getSchemasFromType": "`flow`, `task` and `trigger` (no template, dashboard, apps...)",
    "getPluginDocumentation": "the pydantic model's JSON schema; no outputs schema",
    "searchNamespaces": "namespaces of the deployed flows and their parents (no stored entity)",
    "getNamespace": "namespaces of the deployed flows and their parents (no stored entity)",
    "inheritedVariables": "always empty (namespace variables are not kept)",
    "listFlowExecutionsByNamespace": "the flows' JSON (not reduced to FlowForExecution)",
}

# Kestra type -> what Lanner's class leaves out
PARTIAL_PLUGINS: dict[str, str] = {}

_PARAM = re.compile(r"\{[^}]*\}")
_PREFIXES = ("/api/v1/{tenant}", "/api/v1")


def _normal(path: str) -> str:
    for prefix in _PREFIXES:
        if path.startswith(prefix + "/") or path == prefix:
            path = path[len(prefix) :]
            break
    return _PARAM.sub("{}", path) or "/"


def lanner_routes() -> list[tuple[str, str]]:
    """(METHOD, path) of every API route, as served under ``/api/v1/{tenant}``."""
    from webserver.app import api_routers

    out: set[tuple[str, str]] = set()
    for router in api_routers():
        for route in router.routes:
            if isinstance(route, APIRoute):
                for method in route.methods or ():
                    out.add((method, route.path))
    return sorted(out, key=lambda r: (r[1], r[0]))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _operations_table(
    routes: list[tuple[str, str]],
) -> tuple[list[str], dict[str, int], set[tuple[str, str]]]:
    spec = json.loads(OPERATIONS.read_text())
    served = {(m, _normal(p)): (m, p) for m, p in routes}
    used: set[tuple[str, str]] = set()
    counts = {"supported": 0, "partial": 0, "absent": 0}
    lines: list[str] = []
    tag = None
    for op in sorted(spec["operations"], key=lambda o: (o["tag"], o["path"], o["method"])):
        if op["tag"] != tag:
            tag = op["tag"]
            lines += ["", f"### {tag}", "", "| status | method | path | operationId | note |"]
            lines.append("|---|---|---|---|---|")
        key = (op["method"], _normal(op["path"]))
        if key in served:
            used.add(served[key])
            reason = PARTIAL_OPERATIONS.get(op["operationId"])
            status = "partial" if reason else "supported"
            note = reason or ""
        else:
            status, note = "absent", ""
        counts[status] += 1
        lines.append(
            f"| {status} | {op['method']} | `{op['path']}` | {op['operationId']} | {_cell(note)} |"
        )
    return lines, counts, used


def _plugins_table() -> tuple[list[str], dict[str, int], list[str]]:
    from common.plugins.registry import canonical_type, registry

    kestra_types = [
        line.strip()
        for line in CORE_PLUGINS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    reg = registry()
    counts = {"supported": 0, "partial": 0, "absent": 0}
    lines = ["| status | type | Lanner class | note |", "|---|---|---|---|"]
    resolved: set[str] = set()
    for name in sorted(kestra_types):
        cls = reg.get(name)
        if cls is None:
            status, where, note = "absent", "", ""
        else:
            resolved.add(canonical_type(name))
            note = PARTIAL_PLUGINS.get(name, "")
            status = "partial" if note else "supported"
            where = f"`{cls.__module__}.{cls.__qualname__}`"
        counts[status] += 1
        lines.append(f"| {status} | `{name}` | {where} | {_cell(note)} |")
    extra = [t for t in reg.types() if t not in resolved]
    return lines, counts, extra


def _summary(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return (
        f"{total} in all: {counts['supported']} supported, {counts['partial']} partial, "
        f"{counts['absent']} absent."
    )


def render() -> str:
    """The table's markdown, from the committed inputs, the routes and the registry."""
    spec = json.loads(OPERATIONS.read_text())
    routes = lanner_routes()
    op_lines, op_counts, used = _operations_table(routes)
    plugin_lines, plugin_counts, extra_types = _plugins_table()
    header = [
        "# Kestra compatibility",
        "",
        f"Generated by `{COMMAND}` (do not edit: a test fails when it is not current).",
        "",
        f"- API operations: Kestra {spec['version']}, from {spec['source']} "
        f"(`docs/kestra-api-operations.json`, tags {', '.join(spec['tags'])}).",
        "- Core plugin types: `docs/kestra-core-plugins.txt` (its header names the source).",
        "- *supported*: a Lanner route answers Kestra's method and path (the `actions/`, bulk "
        "and KV routes are driven by tests with Kestra's JSON field names); *partial*: served, "
        "with the difference said; *absent*: not served.",
        "",
        "## Core plugin types (`io.kestra.plugin.core.*`)",
        "",
        _summary(plugin_counts),
        "",
        *plugin_lines,
        "",
        "Other types Lanner registers: " + ", ".join(f"`{t}`" for t in extra_types) + ".",
        "",
        "## API operations",
        "",
        _summary(op_counts) + " Every operation is also served without the tenant "
        "(`/api/v1/...`, the default tenant).",
        *op_lines,
        "",
        "## Lanner routes outside Kestra's current API",
        "",
        "Kestra's older paths (before 2.0) and Lanner's own, under `/api/v1` and "
        "`/api/v1/{tenant}`:",
        "",
        "| method | path |",
        "|---|---|",
    ]
    for method, path in routes:
        if (method, path) not in used:
            header.append(f"| {method} | `{path}` |")
    return "\n".join(header) + "\n"


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the table is stale")
    args = parser.parse_args(list(argv) if argv is not None else None)
    text = render()
    if args.check:
        if not TABLE.exists() or TABLE.read_text() != text:
            print(f"{TABLE} is not current: run `{COMMAND}` to regenerate", file=sys.stderr)
            return 1
        return 0
    TABLE.write_text(text)
    print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
