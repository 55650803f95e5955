"""The notebooks as committed: no outputs, and the apps' checks kept out of the apps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tskit.widgets._voila import in_voila

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
APPS = ["callback_manager", "audit_dashboard", "listener_view", "plan_view"]


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


NBVAL_PREFIX = "env -u SERVER_SOFTWARE -u VOILA_KERNEL_ID"


def test_the_nbval_step_runs_the_checks_even_with_voila_variables_inherited(tmp_path: Path) -> None:
    """A broken check must fail the nbval step, whatever Voilà variables the shell passed down."""
    import os
    import shlex
    import subprocess
    import sys

    run_script = (NOTEBOOKS.parent / ".ci" / "run").read_text()
    step = ".venv/bin/python -m pytest -p tests.run_guard --max-skipped 0 --nbval-lax"
    assert f"{NBVAL_PREFIX} \\\n  {step}" in run_script
    notebook = json.loads((NOTEBOOKS / "callback_manager.ipynb").read_text())
    notebook["cells"][-1]["source"] = [
        *notebook["cells"][-1]["source"],
        "\n    raise AssertionError('the checks ran')\n",
    ]
    broken = tmp_path / "broken_app.ipynb"
    broken.write_text(json.dumps(notebook))
    leaked = {**os.environ, "SERVER_SOFTWARE": "voila/0.5.13", "VOILA_KERNEL_ID": "leaked"}
    command = [*shlex.split(NBVAL_PREFIX), sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env"]
    done = subprocess.run(
        [*command, "-p", "no:randomly", "-p", "no:cacheprovider", str(broken)],
        env=leaked,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "the checks ran" in done.stdout, done.stdout[-2000:]


def test_many_open_listener_apps_each_get_a_port_and_free_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Voilà page has a kernel running the app cell; 30 of them outnumber ThingSpace's 27 ports."""
    import atexit

    for name in [n for n in __import__("os").environ if n.upper().startswith("THINGSPACE_")]:
        monkeypatch.delenv(name)
    stops: list[object] = []
    monkeypatch.setattr(atexit, "register", lambda stop: stops.append(stop))
    app = "".join(json.loads((NOTEBOOKS / "listener_view.ipynb").read_text())["cells"][0]["source"])
    pages = []
    try:
        for _ in range(30):
            page: dict[str, object] = {}
            exec(compile(app, "listener_view", "exec"), page)
            pages.append(page)
            assert page["listener"] is not None
        ports = {page["listener"].port for page in pages}  # type: ignore[attr-defined]
        assert len(ports) == 30
        delivery = pages[-1]["ts"].simulator.trigger("0000123456-00003", "CarrierService").wait()  # type: ignore[attr-defined]
        assert delivery.delivered
    finally:
        for stop in stops:
            stop()  # type: ignore[operator]
    listener_stops = [s for s in stops if getattr(s, "__qualname__", "") == "Listener.stop"]
    assert len(listener_stops) == 30  # every kernel frees its port when it ends


def test_voila_ends_the_kernels_of_closed_pages() -> None:
    pytest.importorskip("voila")
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
    from voila.app import Voila  # type: ignore[import-untyped]

    app = Voila()
    app.load_config_file("voila", path=[str(NOTEBOOKS.parent)])  # as when started from the repository root
    manager = AsyncMappingKernelManager(config=app.config)  # type: ignore[no-untyped-call]
    assert 0 < manager.cull_idle_timeout <= 600 and manager.cull_interval > 0 and not manager.cull_connected
