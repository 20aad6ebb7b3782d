"""Loads the conformance manifest (../shared/conformance) and the flows it names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

CONFORMANCE_DIR = Path(
    os.environ.get(
        "LANNER_CONFORMANCE_DIR",
        Path(__file__).resolve().parents[2].parent / "shared" / "conformance",
    )
)


def load_manifest() -> dict[str, Any]:
    path = CONFORMANCE_DIR / "manifest.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"conformance manifest not found at {path}: set LANNER_CONFORMANCE_DIR to the "
            "shared/conformance folder"
        )
    return yaml.safe_load(path.read_text())


def entries() -> list[dict[str, Any]]:
    return list(load_manifest()["entries"])


def flow_source(file: str) -> str:
    return (CONFORMANCE_DIR / "flows" / file).read_text()


def input_file(path: str) -> Path:
    return CONFORMANCE_DIR / "files" / path
