"""tskit's import graph keeps its layers: no cycles, no reach-ins, function-level imports only for heavy dependencies.

Read from the source by :mod:`tests.layers` (``python -m tests.layers`` prints what breaks a rule).
"""

from __future__ import annotations

from tests import layers

# The packages that load pandas (and more) when imported: `import tskit` and connect() load them on
# first use, so that `import tskit` stays light (PEP 562 __getattr__, and the facade's operations).
HEAVY_PACKAGES = ("tskit.audit", "tskit.listener", "tskit.state", "tskit.simulator", "tskit.widgets")
LAZY_LOADERS = {"tskit", "tskit._facade"}

GRAPH = layers.build()


def _module_of(path_and_line: str) -> str:
    path = path_and_line.split(":", 1)[0]
    return next(m for m, p in GRAPH.modules.items() if str(p.relative_to(layers.ROOT.parent)) == path)


def test_no_import_cycles() -> None:
    assert layers.cycles(GRAPH) == []


def test_no_package_imports_another_packages_private_names() -> None:
    assert layers.reach_ins(GRAPH) == []


def test_function_level_imports_are_of_heavy_optional_dependencies_only() -> None:
    found = []
    for entry in layers.local_imports(GRAPH):
        module, target = _module_of(entry), entry.rsplit(": ", 1)[1]
        if module in LAZY_LOADERS and target.startswith(HEAVY_PACKAGES):
            continue
        found.append(entry)
    assert found == []


def test_no_module_is_over_500_lines() -> None:
    assert layers.oversized() == []


def test_the_checker_sees_a_cycle_a_reach_in_a_local_import_and_a_long_module(tmp_path, monkeypatch) -> None:
    package = tmp_path / "tskit"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_a.py").write_text("from tskit import _b\n")
    (package / "_b.py").write_text("def f():\n    from tskit import _a\n")
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "_x.py").write_text("from tskit.other._y import hidden\n")
    (package / "other").mkdir()
    (package / "other" / "__init__.py").write_text("")
    (package / "other" / "_y.py").write_text("hidden = 1\n")
    (package / "other" / "_long.py").write_text("x = 1\n" * 501)
    (package / "other" / "_full.py").write_text("x = 1\n" * 500)
    monkeypatch.setattr(layers, "ROOT", package)
    graph = layers.build()
    assert layers.cycles(graph) == [["tskit._a", "tskit._b"]]
    assert "tskit.inner._x -> tskit.other._y" in layers.reach_ins(graph)
    assert layers.local_imports(graph) == ["tskit/_b.py:2: tskit", "tskit/_b.py:2: tskit._a"]
    assert layers.oversized() == ["tskit/other/_long.py: 501"]


def _imports(module: str) -> set[str]:
    """Every tskit module or name ``module`` imports, at any level (outside ``if TYPE_CHECKING``)."""
    return GRAPH.top[module] | {t for _, t in GRAPH.local[module]} | GRAPH.names[module]


def test_the_widgets_reach_the_network_only_through_the_facade() -> None:
    below = (
        "tskit._runner",
        "tskit._runtime",
        "tskit._transport",
        "tskit._client",
        "tskit._sending",
        "tskit._confirm",
        "tskit._auth",
        "tskit._session",
    )
    found = {
        m: sorted(t for t in _imports(m) if t.startswith(below)) for m in GRAPH.modules if m.startswith("tskit.widgets")
    }
    assert {m: t for m, t in found.items() if t} == {}


def test_the_core_imports_nothing_built_on_it() -> None:
    core = [
        m
        for m in GRAPH.modules
        if m.count(".") == 1 and m.split(".")[1].startswith("_") and m not in ("tskit._facade", "tskit.__main__")
    ]
    above = (
        "tskit.audit",
        "tskit.state",
        "tskit.widgets",
        "tskit.simulator",
        "tskit.listener",
        "tskit.ops",
        "tskit.cli",
    )
    found = {m: sorted(t for t in _imports(m) if t.startswith(above)) for m in core}
    assert {m: t for m, t in found.items() if t} == {}
