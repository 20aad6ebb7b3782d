"""Loads the conformance manifest and the flows it names.

The data lives outside this repository: ``$LANNER_CONFORMANCE_DIR``, by default
``../shared/conformance`` beside the repository root. Without it the suites that read it are not
collected and one line says so (``tests/conftest.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = Path(
    os.environ.get("LANNER_CONFORMANCE_DIR", REPOSITORY_ROOT.parent / "shared" / "conformance")
)
# How many cases the manifest holds: printed when the data is absent (the count cannot be read
# from data that is not there), and checked against the manifest when it is present.
MANIFEST_CASES = 70
# The suites that read the conformance data, relative to the repository root.
SUITES = ("tests/conformance", "tests/templating/test_conformance_flows.py")


def manifest_path() -> Path:
    return CONFORMANCE_DIR / "manifest.yaml"


def available() -> bool:
    return manifest_path().is_file()


def absent_line() -> str:
    """The one line printed instead of running the suites when the data is absent."""
    return (
        f"conformance data not found at {CONFORMANCE_DIR}: {MANIFEST_CASES} cases not run "
        f"({', '.join(SUITES)} not collected; set LANNER_CONFORMANCE_DIR)"
    )


def load_manifest() -> dict[str, Any]:
    path = manifest_path()
    if not path.is_file():
        raise FileNotFoundError(absent_line())
    return yaml.safe_load(path.read_text())


def entries() -> list[dict[str, Any]]:
    return list(load_manifest()["entries"])


def flow_source(file: str) -> str:
    return (CONFORMANCE_DIR / "flows" / file).read_text()


def input_file(path: str) -> Path:
    return CONFORMANCE_DIR / "files" / path
