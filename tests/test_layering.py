"""Import layering of the DSL modules: one-way, and no pandas or tqdm in the language core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cxrvqa"
# Each module may import (at module level) only modules listed before it.
LAYERS = ["vocab", "facts", "source", "errors", "resources", "nodes", "printer", "parser", "kinds",
          "check", "answers", "interpreter", "programs"]
# Imports inside functions that break a cycle on purpose (documented where they are).
DEFERRED = {("nodes", "printer"), ("nodes", "programs")}


def cxrvqa_imports(node: ast.AST, at_import_time: bool) -> set[str]:
    """cxrvqa modules imported below ``node``; ``at_import_time`` skips function bodies and
    ``if TYPE_CHECKING:`` blocks (they do not run when the module is imported)."""
    found = set()
    for child in ast.iter_child_nodes(node):
        if at_import_time and (isinstance(child, ast.FunctionDef) or (
                isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING")):
            continue
        if isinstance(child, ast.ImportFrom) and (child.module or "").startswith("cxrvqa"):
            found |= ({child.module.split(".")[1]} if "." in child.module  # type: ignore[union-attr]
                      else {alias.name for alias in child.names})
        found |= cxrvqa_imports(child, at_import_time)
    return found


@pytest.mark.parametrize("name", LAYERS)
def test_imports_point_down_the_layers(name: str) -> None:
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    allowed = set(LAYERS[: LAYERS.index(name)])
    assert cxrvqa_imports(tree, at_import_time=True) <= allowed
    deferred = cxrvqa_imports(tree, at_import_time=False) - allowed
    assert {(name, module) for module in deferred} <= DEFERRED


@pytest.mark.parametrize("name", LAYERS)
def test_no_pandas_or_tqdm(name: str) -> None:
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"pandas", "tqdm", "numpy"}
