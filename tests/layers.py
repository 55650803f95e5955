"""The import graph of tskit's own modules, read from the source: cycles, reach-ins and function-level imports.

Run ``python -m tests.layers`` to print what breaks the layering rules; ``tests/test_layers.py`` asserts on it.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tskit"
# Heavy optional dependencies: the only names a function may import locally.
HEAVY = (
    "pandas",
    "numpy",
    "ipywidgets",
    "IPython",
    "uvicorn",
    "psycopg",
    "psycopg_pool",
    "pyarrow",
    "tqdm",
    "voila",
    "matplotlib",
    "tomli_w",
    "nest_asyncio2",
    "nest_asyncio",
    "anywidget",
    "traitlets",
)


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)
    top: dict[str, set[str]] = field(default_factory=dict)  # module-level imports of tskit modules
    local: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # function-level imports
    names: dict[str, set[str]] = field(default_factory=dict)  # "module.name" imported by name, any level


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = module.split(".") if is_package else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([base] if base else []))
    names = [base]
    names += [f"{base}.{a.name}" for a in node.names]
    return names


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _in_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return True
    return False


def build() -> Graph:
    graph = Graph()
    for path in sorted(ROOT.rglob("*.py")):
        graph.modules[module_name(path)] = path
    for name, path in graph.modules.items():
        tree = ast.parse(path.read_text())
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        graph.top[name] = set()
        graph.local[name] = []
        graph.names[name] = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or _in_type_checking(node, parents):
                continue
            targets = _resolve(name, path.name == "__init__.py", node)
            if isinstance(node, ast.ImportFrom):
                graph.names[name].update(targets[1:])
            if _in_function(node, parents):
                graph.local[name].append((node.lineno, targets[0]))
                # `from tskit import _a` in a function imports the module tskit._a: an arrow of the graph too
                graph.local[name] += [(node.lineno, t) for t in targets[1:] if t in graph.modules and t != name]
                continue
            for target in targets:
                if target in graph.modules and target != name:
                    graph.top[name].add(target)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module (module-level and function-level imports)."""
    edges = {m: set(graph.top[m]) for m in graph.modules}
    for m, imports in graph.local.items():
        for _, target in imports:
            if target in graph.modules and target != m:
                edges[m].add(target)
    # A package's __init__ re-exporting its submodules is not a cycle of meaning: drop parent->child arrows.
    for m in edges:
        edges[m] = {t for t in edges[m] if not t.startswith(m + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(edges):
        if m not in index:
            visit(m)
    return out


def local_imports(graph: Graph) -> list[str]:
    """Function-level imports of anything but a heavy optional dependency."""
    found = []
    for m, imports in graph.local.items():
        for line, target in imports:
            if not target.startswith(HEAVY):
                found.append(f"{graph.modules[m].relative_to(ROOT.parent)}:{line}: {target}")
    return found


def _package(module: str, graph: Graph) -> str:
    """The package a module belongs to: ``tskit.state`` for ``tskit.state._plan``; ``tskit`` for the core."""
    parts = module.split(".")
    if len(parts) >= 2 and (module in graph.modules and graph.modules[module].name == "__init__.py"):
        return module
    return ".".join(parts[:2]) if len(parts) > 2 else "tskit"


def reach_ins(graph: Graph) -> list[str]:
    """Imports of another package's private module or private name (``from tskit.cli import _accounts``)."""
    found = set()
    for m in graph.modules:
        mine = _package(m, graph)
        for t in graph.top[m] | {t for _, t in graph.local[m]} | graph.names[m]:
            if not t.startswith("tskit."):
                continue
            owner = t if t in graph.modules else t.rsplit(".", 1)[0]
            if owner not in graph.modules or _package(owner, graph) == mine:
                continue
            if mine != "tskit" and _package(owner, graph) == "tskit" and not t.rsplit(".", 1)[-1].startswith("_"):
                continue  # a public name of a core module
            if _package(owner, graph) == "tskit" and t in graph.modules:
                continue  # the core's own modules are shared by everyone
            private = [p for p in t.split(".")[1:] if p.startswith("_") and not p.startswith("__")]
            core_module = _package(owner, graph) == "tskit" and private == [t.split(".")[1]]
            if private and not core_module:
                found.add(f"{m} -> {t}")
    return sorted(found)


def oversized(limit: int = 500) -> list[str]:
    return [
        f"{p.relative_to(ROOT.parent)}: {n}"
        for p in sorted(ROOT.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > limit
    ]


if __name__ == "__main__":
    g = build()
    for c in cycles(g):
        print("cycle:", " <-> ".join(c))
    for r in reach_ins(g):
        print("reach-in:", r)
    for r in local_imports(g):
        print("local import:", r)
    for r in oversized():
        print("over 500 lines:", r)
