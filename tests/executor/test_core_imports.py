"""executor/core.py stays pure: only common.*, its own helpers and the stdlib; no I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "executor" / "core.py"
ALLOWED_LOCAL = {"executor._variables", "executor.concurrency", "executor.state"}


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from ._variables import ... -> executor._variables
                names.append("executor." + (node.module or ""))
            else:
                names.append(node.module or "")
    return names


def test_core_imports_only_common_its_helpers_and_the_stdlib() -> None:
    tree = ast.parse(CORE.read_text())
    bad = [
        name
        for name in _imports(tree)
        if not (
            name == "common"
            or name.startswith("common.")
            or name in ALLOWED_LOCAL
            or name.split(".")[0] in sys.stdlib_module_names
            or name == "__future__"
        )
    ]
    assert bad == []


def test_core_does_no_io_nor_reads_the_clock() -> None:
    tree = ast.parse(CORE.read_text())
    calls: list[str] = []
    attributes: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                calls.append(func.id)
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                calls.append(f"{func.value.id}.{func.attr}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            attributes.append(f"{node.value.id}.{node.attr}")
    for forbidden in ("open", "print", "input", "exec", "eval", "__import__"):
        assert forbidden not in calls, forbidden
    for forbidden in (
        "datetime.now",
        "datetime.utcnow",
        "datetime.today",
        "date.today",
        "random.random",
        "random.randint",
        "random.choice",
        "random.uniform",
        "uuid.uuid4",
        "uuid.uuid1",
        "os.environ",
        "os.getenv",
        "socket.socket",
    ):
        assert forbidden not in attributes, forbidden
    # no use of the time module at all
    assert not any(a.startswith("time.") for a in attributes)
    imported = set(_imports(tree))
    for module in ("time", "os", "socket", "subprocess", "threading", "uuid", "requests", "httpx"):
        assert module not in imported, module


def test_randomness_in_core_is_seeded() -> None:
    # random.Random(seed) is allowed (a deterministic retry jitter); the global generator is not
    tree = ast.parse(CORE.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "random"
        ):
            assert node.func.attr == "Random" and node.args, ast.unparse(node)
