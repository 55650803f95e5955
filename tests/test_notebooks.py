"""The notebooks as committed: no outputs, and the apps' checks kept out of the apps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tskit.widgets._voila import in_voila

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
APPS = ["callback_manager", "audit_dashboard", "listener_view"]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("name", APPS)
def test_an_app_is_one_cell_and_its_checks_stay_out_of_it(name: str) -> None:
    cells = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())["cells"]
    assert all(c["cell_type"] == "code" for c in cells)  # no text around the app in Voila
    app, *checks = ["".join(c["source"]) for c in cells]
    assert "assert" not in app and "in_voila" in app
    assert checks and all("\nif not in_voila():\n" in c for c in checks)
    for check in checks:  # everything after the guard is inside it
        body = check.split("if not in_voila():\n", 1)[1]
        assert all(line.startswith("    ") for line in body.splitlines() if line.strip())


def test_in_voila_reads_what_voila_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVER_SOFTWARE", raising=False)
    monkeypatch.delenv("VOILA_KERNEL_ID", raising=False)
    assert not in_voila()
    monkeypatch.setenv("SERVER_SOFTWARE", "voila/0.5.13")
    assert in_voila()
    monkeypatch.setenv("SERVER_SOFTWARE", "gunicorn/22")
    assert not in_voila()
    monkeypatch.setenv("VOILA_KERNEL_ID", "3f0c")
    assert in_voila()
