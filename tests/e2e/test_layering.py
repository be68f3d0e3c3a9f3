"""The package's layers and the imports allowed between them.

    errors, vocab, facts   the foundation: import no other cxrvqa module
    lang/                  the template-program language: foundation only
    programs               loading and answering with programs: + lang
    build/                 the PhysioNet build: + programs
    tools/                 generate, stats, evaluate, explain, sqlite, verify, export, download: + build
    synth/                 the synthetic tree (its questions come from tools/generate): + tools
    cli, __init__, _compat the entry points: anything

Every import counts, also those inside functions and ``if TYPE_CHECKING:`` blocks. The
whole package has exactly one import cycle, ``lang.nodes`` <-> ``lang.printer``
(``str(node)`` prints source, and the printer dispatches on node classes).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cxrvqa"
FOUNDATION = {"errors", "vocab", "facts"}
ALLOWED: dict[str, set[str]] = {
    "foundation": set(),
    "lang": FOUNDATION | {"lang"},
    "programs": FOUNDATION | {"lang"},
    "build": FOUNDATION | {"lang", "programs", "build"},
    "tools": FOUNDATION | {"lang", "programs", "build", "tools"},
    "synth": FOUNDATION | {"lang", "programs", "build", "tools", "synth"},
}
ENTRY_POINTS = {"cli", "__init__", "__main__", "_compat"}
ALLOWED_CYCLES = [{"lang.nodes", "lang.printer"}]
NO_DATAFRAMES = {"pandas", "numpy", "tqdm", "pyarrow"}


def modules() -> dict[str, Path]:
    """Dotted module name (without ``cxrvqa.``) -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer(module: str) -> str:
    top = module.split(".")[0]
    return "foundation" if top in FOUNDATION else top


def imports(path: Path) -> set[str]:
    """cxrvqa modules (dotted, without ``cxrvqa.``) that a file imports anywhere."""
    known = set(modules())
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("cxrvqa."):
                dotted = name.removeprefix("cxrvqa.")
                while dotted and dotted not in known:
                    dotted = dotted.rpartition(".")[0]
                if dotted:
                    found.add(dotted)
    return found


def graph() -> dict[str, set[str]]:
    return {name: imports(path) - {name} for name, path in modules().items()}


def test_no_relative_imports() -> None:
    # Absolute imports keep every arrow visible to this test and to readers.
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level], name


@pytest.mark.parametrize("name", sorted(set(modules()) - ENTRY_POINTS))
def test_imports_point_down_the_layers(name: str) -> None:
    targets = {layer(target) if layer(target) != "foundation" else target.split(".")[0]
               for target in graph()[name]}
    allowed = ALLOWED[layer(name)]
    if layer(name) == "foundation":  # errors, vocab and facts import nothing of cxrvqa
        allowed = set()
    assert targets <= allowed, f"{name} imports {sorted(targets - allowed)}"


def test_at_most_the_one_documented_cycle() -> None:
    edges = graph()
    cycles = [component for component in _strongly_connected(edges) if len(component) > 1]
    assert cycles == ALLOWED_CYCLES


@pytest.mark.parametrize("name", sorted(name for name in modules()
                                        if layer(name) in ("lang", "foundation")
                                        or name == "programs"))
def test_language_runs_without_dataframes(name: str) -> None:
    tree = ast.parse(modules()[name].read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & NO_DATAFRAMES


def test_at_most_ten_modules_directly_in_the_package() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 10


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative-free recursion is fine for ~60 modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components
