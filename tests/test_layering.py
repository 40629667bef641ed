"""Imports follow STYLE.md's allowed directions; packages export only their `__all__`."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "openrft"

# Which openrft packages each part may import (errors, config and datasets are open to all).
ALLOWED = {
    "api": {"store", "jobs", "graders", "inference", "ui"},
    "store": set(),
    "jobs": {"store"},
    "training": {"inference", "graders", "store"},
    "graders": set(),
    "inference": set(),
    "datasets": set(),
    "methods": set(),
    "ui": set(),
    "cli": {"api", "store", "inference", "jobs", "graders", "training", "demo"},
}
# Open to every part: the error tree, settings, and two torch-free leaf packages that
# describe requests (JSONL checking, method hyperparameters).
OPEN = {"errors", "config", "logs", "__init__", "datasets", "methods"}
HEAVY_FORBIDDEN = {
    "store": {"fastapi", "torch"},
    "graders": {"fastapi", "torch"},
    "inference": {"fastapi"},
    "jobs": {"fastapi", "torch"},
    "training": {"fastapi"},
    "datasets": {"fastapi", "torch"},
    "methods": {"fastapi", "torch"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _part(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layers(path: Path) -> None:
    part = _part(path)
    if part in OPEN:
        allowed: set[str] = set()
    else:
        allowed = ALLOWED.get(part, set()) | {part}
    for name in _imports(path):
        top = name.split(".")
        if top[0] == "openrft" and len(top) > 1:
            target = top[1]
            assert target in allowed | OPEN, f"{part} must not import openrft.{target}"
        assert top[0] not in HEAVY_FORBIDDEN.get(part, set()), f"{part} must not import {top[0]}"


@pytest.mark.parametrize(
    "package", ["store", "datasets", "methods", "api", "jobs", "graders", "inference"]
)
def test_exported_members(package: str) -> None:
    module = importlib.import_module(f"openrft.{package}")
    # `annotations` is the `from __future__` feature flag, not an export.
    public = {n for n in vars(module) if not n.startswith("_")} - {"annotations"}
    exported = set(module.__all__)
    submodules = {
        n
        for n in public
        if hasattr(getattr(module, n), "__path__")
        or getattr(getattr(module, n), "__name__", "").startswith(f"openrft.{package}.")
    }
    assert exported <= public
    assert public - exported - submodules == set(), "names leaked without __all__"
