"""``docs/kestra-compatibility.md`` is current: regenerated in memory from the committed Kestra
operations and core types, the webserver's routes and the plugin registry, it must equal the
committed file (a route or a plugin added without the table fails here)."""

from __future__ import annotations

import json

from webserver import compat


def test_the_compatibility_table_is_current() -> None:
    expected = compat.render()
    committed = compat.TABLE.read_text() if compat.TABLE.exists() else ""
    assert committed == expected, (
        f"{compat.TABLE.name} is not current: run `.venv/bin/{compat.COMMAND}` to regenerate it"
    )


def test_every_kestra_operation_and_core_type_has_a_row() -> None:
    text = compat.render()
    spec = json.loads(compat.OPERATIONS.read_text())
    assert spec["source"] and spec["version"]
    for op in spec["operations"]:
        assert f"`{op['path']}` | {op['operationId']} |" in text, op
    for line in compat.CORE_PLUGINS.read_text().splitlines():
        if line and not line.startswith("#"):
            assert f"`{line}`" in text
    # the routes this work added are in the table as served
    for operation in ("killExecution", "restartExecutionsByIds", "listPlugins", "getNamespace"):
        row = next(r for r in text.splitlines() if f"| {operation} |" in r)
        assert not row.startswith("| absent"), row
