"""The predictors package imports without cycles: no module imports another that (indirectly) imports it back,
counting imports inside functions too (only `if TYPE_CHECKING:` blocks are exempt)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "llmsched" / "predictors"
PREFIX = "llmsched.predictors."


def _imports(path: Path) -> set[str]:
    """The predictors modules `path` imports (`from llmsched.predictors import x` counts x when it is a module)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and child.module:
                if child.module.startswith(PREFIX):
                    found.add(child.module.removeprefix(PREFIX).split(".")[0])
                elif child.module == "llmsched.predictors":
                    found.update(a.name for a in child.names if a.name in modules)
            elif isinstance(child, ast.Import):
                found.update(a.name.removeprefix(PREFIX) for a in child.names if a.name.startswith(PREFIX))
            visit(child)

    visit(ast.parse(path.read_text()))
    return found - {path.stem}


def test_predictor_modules_import_each_other_without_cycles():
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for dep in sorted(graph.get(module, ())):
            walk(dep, [*path, module])
        done.add(module)

    for module in sorted(graph):
        walk(module, [])
    assert {"config", "objectives", "train", "trained", "ranker", "registry"} <= set(graph)
