from __future__ import annotations

import ast
from pathlib import Path

import openrft.graders as graders

PACKAGE = Path(graders.__file__).parent


def test_public_names_are_exactly_all() -> None:
    public = {name for name in vars(graders) if not name.startswith("_")}
    public -= {"annotations", "Path"}  # import artefacts of __init__ itself
    assert public == set(graders.__all__)


def test_no_forbidden_imports_and_small_modules() -> None:
    forbidden = ("fastapi", "torch", "openrft.api", "openrft.store", "openrft.training")
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        assert len(path.read_text().splitlines()) <= 400, path
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                assert length <= 60, f"{path.name}:{node.name} has {length} lines"
