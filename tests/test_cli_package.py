"""The tskit command as a package: a light import, options refused before connecting, connections closed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import tskit
from tskit.cli import main
from tskit.simulator import Simulator, SimulatorServer, demo_env

A1 = "0000123456-00001"
HEAVY = ("pandas", "numpy", "ipywidgets", "uvicorn", "pyarrow", "psycopg")


def test_help_imports_nothing_heavy() -> None:
    """``tskit --help`` (and every command's help) loads neither pandas nor any other heavy dependency."""
    script = f"""
import argparse, contextlib, io, json, sys
from tskit.cli import build_parser, main
found = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
commands = [[]] + [[name] for name in found[0].choices]
for argv in commands:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
print(json.dumps({{"commands": len(commands), "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(done.stdout)
    assert seen["loaded"] == [] and seen["commands"] == 14  # `tskit` and its 13 commands


@dataclass
class Connections:
    """Every connection the command made, and the ones it closed."""

    made: list[tskit.ThingSpace] = field(default_factory=list)
    closed: list[tskit.ThingSpace] = field(default_factory=list)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Connections:
    seen = Connections()
    real_connect, real_close = tskit.connect, tskit.ThingSpace.close

    def connect(**kwargs: object) -> tskit.ThingSpace:
        ts = real_connect(**kwargs)  # type: ignore[arg-type]
        seen.made.append(ts)
        return ts

    def close(self: tskit.ThingSpace) -> None:
        seen.closed.append(self)
        real_close(self)

    monkeypatch.setattr(tskit, "connect", connect)
    monkeypatch.setattr(tskit.ThingSpace, "close", close)
    return seen


@pytest.fixture
def served(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    """The simulator on loopback, and the THINGSPACE_* variables that lead the command to it."""
    with sim.serve() as server:
        for key, value in demo_env(server.base_url).items():
            monkeypatch.setenv(key, value)
        yield server


@pytest.fixture
def desired(tmp_path: Path) -> Path:
    path = tmp_path / "desired.toml"
    path.write_text(f'["{A1}".CarrierService]\nurl = "https://listener.example.com/c"\n')
    return path


@pytest.mark.server
@pytest.mark.parametrize("concurrency", ["0", "257"])
@pytest.mark.parametrize("command", ["export", "plan", "apply", "rotate"])
def test_a_concurrency_out_of_range_is_refused_before_connecting(
    command: str,
    concurrency: str,
    served: SimulatorServer,
    sim: Simulator,
    connections: Connections,
    desired: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEW_PW", "a-new-listener-password")
    target = {
        "export": [A1],
        "plan": [str(desired)],
        "apply": [str(desired), "--yes"],
        "rotate": [A1, "--password-env", "NEW_PW", "--yes"],
    }[command]
    before = len(sim.requests)
    code = main([command, *target, "--concurrency", concurrency, "--no-progress"])
    err = capsys.readouterr().err
    assert code == (1 if command == "plan" else 2), err  # plan: 2 means "changes pending"
    assert err.startswith(f"tskit {command}: --concurrency: {concurrency} is out of range"), err
    assert connections.made == [] and len(sim.requests) == before


def test_a_concurrency_out_of_range_never_falls_back_to_the_simulator(
    connections: Connections, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without credentials the refusal comes first: no notice of the embedded simulator, no connection."""
    for name in ("THINGSPACE_CLIENT_ID", "THINGSPACE_CLIENT_SECRET", "THINGSPACE_USERNAME", "THINGSPACE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["export", A1, "--concurrency", "0"]) == 2
    assert capsys.readouterr().err == (
        "tskit export: --concurrency: 0 is out of range (a whole number from 1 to 256)\n"
    )
    assert connections.made == []


@pytest.mark.server
@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "{file}"],  # changes pending
        ["plan", "{file}", "--format", "json"],
        ["plan", "{missing}"],  # a failure: the file cannot be read
        ["apply", "{file}", "--yes"],
    ],
)
def test_plan_and_apply_close_their_connection(
    argv: list[str],
    served: SimulatorServer,
    connections: Connections,
    desired: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    words = [word.format(file=desired, missing=tmp_path / "missing.toml") for word in argv]
    main([*words, "--no-progress"])
    capsys.readouterr()
    assert len(connections.made) == 1
    assert connections.closed == connections.made


@pytest.mark.server
def test_apply_with_nothing_to_change_closes_its_connection(
    served: SimulatorServer, connections: Connections, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "exported.toml"
    assert main(["export", A1, "--output", str(exported), "--no-progress"]) == 0
    assert main(["apply", str(exported), "--yes", "--no-progress"]) == 0
    assert "Nothing to change" in capsys.readouterr().out
    assert len(connections.made) == 2 and connections.closed == connections.made


def test_the_cli_package_keeps_to_its_layer() -> None:
    """No cycle through tskit/cli/, no other package's private names, small modules, imports at module level."""
    from tests import layers

    graph = layers.build()
    assert [cycle for cycle in layers.cycles(graph) if any(m.startswith("tskit.cli") for m in cycle)] == []
    assert [r for r in layers.reach_ins(graph) if r.startswith("tskit.cli") or "-> tskit.cli." in r] == []
    assert [r for r in layers.oversized() if r.startswith("tskit/cli/")] == []
    # the error words keep their one import inside a function until they are rendered from the errors' fields
    local = [r for r in layers.local_imports(graph) if r.startswith("tskit/cli/") and "_words.py" not in r]
    assert local == []
