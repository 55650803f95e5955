"""Every blocking call of the facade is generated from its async twin, and the package's names are all listed."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import tskit
from tskit import ThingSpace
from tskit._runtime import blocking

ASYNC_OPERATIONS = sorted(
    name for name, member in vars(ThingSpace).items() if inspect.iscoroutinefunction(member) and name.startswith("a")
)


def test_the_facade_has_its_operations() -> None:
    assert {"alist_callbacks", "aregister_callback", "aderegister_callback", "aaudit", "aplan"} <= set(ASYNC_OPERATIONS)
    assert {"aexport", "arotate_password", "aclose"} <= set(ASYNC_OPERATIONS)


@pytest.mark.parametrize("name", ASYNC_OPERATIONS)
def test_each_async_operation_has_a_blocking_twin_of_the_same_signature_and_docstring(name: str) -> None:
    operation = getattr(ThingSpace, name)
    twin = getattr(ThingSpace, name.removeprefix("a"))
    assert not inspect.iscoroutinefunction(twin)
    assert inspect.signature(twin) == inspect.signature(operation)  # names, kinds, defaults, annotations
    assert twin.__wrapped__ is operation  # generated, not written again
    assert twin.__name__ == name.removeprefix("a") and twin.__qualname__ == f"ThingSpace.{twin.__name__}"
    doc, twin_doc = inspect.getdoc(operation), inspect.getdoc(twin)
    assert doc and twin_doc
    assert twin_doc.splitlines()[0] == doc.splitlines()[0]
    assert f"await {name}(" in twin_doc
    assert all(line in twin_doc.splitlines() for line in doc.splitlines())  # nothing of it left out


def test_each_blocking_call_has_an_async_twin() -> None:
    for name, member in vars(ThingSpace).items():
        if name.startswith("_") or not inspect.isfunction(member) or inspect.iscoroutinefunction(member):
            continue
        assert name in {"services"} or f"a{name}" in ASYNC_OPERATIONS, name


def test_a_bound_twin_has_the_signature_without_self_and_refuses_a_bad_argument_as_its_twin_does() -> None:
    ts = tskit.connect(simulator=True)
    with ts:
        assert inspect.signature(ts.audit) == inspect.signature(ts.aaudit)
        assert "on_progress" in inspect.signature(ts.audit).parameters  # once missing from the blocking one
        seen: list[tuple[int, int]] = []
        ts.audit(["0000123456-00001", "0000123456-00002"], progress=False, on_progress=lambda d, t: seen.append((d, t)))
        assert sorted(seen) == [(1, 2), (2, 2)]
        with pytest.raises(TypeError):
            ts.list_callbacks("0000123456-00001", "extra")  # type: ignore[call-arg]


def test_blocking_keeps_a_method_of_any_class_blocking_on_the_runtime() -> None:
    class Counter:
        async def aadd(self, a: int, *, b: int = 2) -> int:
            """Add."""
            return a + b

        add = blocking(aadd)

    assert Counter().add(1) == 3 and Counter().add(1, b=5) == 6


def test_all_is_complete_and_dir_lists_the_lazy_names() -> None:
    public = {
        name
        for name in dir(tskit)
        if not name.startswith("_") and not inspect.ismodule(getattr(tskit, name)) and name != "annotations"
    }
    assert public == set(tskit.__all__) - {"__version__"}
    assert {"Audit", "Listener", "DesiredState", "Plan", "Journal"} <= set(dir(tskit))
    assert "Listener" in tskit.__all__


def test_dir_does_not_import_the_lazy_modules() -> None:
    code = "import sys, tskit; names = dir(tskit); print('Listener' in names, 'tskit.listener' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]
