"""The library's floors (docs/library.md, "Layout"): a module imports only from its own floor or below, and no import
cycle exists between modules. Every import counts, also those inside functions; only imports under
`if TYPE_CHECKING:` are exempt."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"

# package (first component under llmsched) -> floor; higher numbers sit higher
FLOORS = {
    "paths": 0, "records": 0, "policies": 0, "steptime": 0, "workload": 0, "models": 0, "kernel": 0,
    "serving": 1, "vllm_plugin": 1, "sim": 1, "predictors": 1, "analysis": 1,
    "experiments": 2, "pipeline": 2, "webreport": 2,
}


def _modules(root: Path = LIB) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_graph(root: Path = LIB) -> dict[str, set[str]]:
    """module -> the llmsched modules it imports (a `from pkg import name` of a submodule counts as that)."""
    mods = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        stack: list[ast.AST] = [ast.parse(path.read_text())]
        while stack:
            node = stack.pop()
            for child in ast.iter_child_nodes(node):
                if _is_type_checking(child):
                    continue
                stack.append(child)
                if isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = package.split(".")[: len(package.split(".")) - child.level + 1]
                        target = ".".join(base + ([child.module] if child.module else []))
                    else:
                        target = child.module or ""
                    for alias in child.names:
                        sub = f"{target}.{alias.name}"
                        graph[mod].add(sub if sub in mods else target)
                elif isinstance(child, ast.Import):
                    graph[mod].update(a.name for a in child.names)
        graph[mod] = {t for t in graph[mod] if t in mods and t != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, t) for m, targets in graph.items() for t in targets
                  if floor(m) is not None and floor(t) is not None and floor(t) > floor(m))


def test_every_package_has_a_floor():
    packages = {m.split(".")[1] for m in _modules() if m.count(".") >= 1}
    assert packages <= set(FLOORS), f"packages without a floor: {sorted(packages - set(FLOORS))}"


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_import_from_a_higher_floor():
    assert upward_imports(import_graph()) == []


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    pkg = tmp_path / "llmsched"
    for sub in ("policies", "sim"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "policies" / "a.py").write_text("def f():\n    from llmsched.sim import b\n")
    (pkg / "sim" / "b.py").write_text("from llmsched.policies import a\n")
    (pkg / "sim" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                      "    from llmsched.policies import a\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["llmsched.policies.a", "llmsched.sim.b"]]
    assert upward_imports(graph) == [("llmsched.policies.a", "llmsched.sim.b")]
    assert graph["llmsched.sim.c"] == set()  # type-checking-only imports do not count


@pytest.mark.parametrize("module", ["llmsched.steptime", "llmsched.records", "llmsched.policies"])
def test_ground_floor_packages_import_without_the_simulator_or_vllm(module):
    import subprocess
    import sys

    code = (f"import sys, {module}; bad = [m for m in ('llmsched.sim', 'llmsched.serving', 'vllm') "
            f"if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
