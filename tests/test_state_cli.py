"""The tskit export, plan, apply and rotate commands, against a simulator on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tskit.cli import EMBEDDED_NOTICE, main
from tskit.simulator import Simulator, SimulatorServer, demo_env

pytestmark = pytest.mark.server
A1, A2, A3 = "0000123456-00001", "0000123456-00002", "0000123456-00003"


@pytest.fixture
def served(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    """The simulator on loopback, and the THINGSPACE_* variables that lead the command to it."""
    with sim.serve() as server:
        for key, value in demo_env(server.base_url).items():
            monkeypatch.setenv(key, value)
        yield server


def test_export_plan_apply_rotate(
    served: SimulatorServer,
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "callbacks.toml"
    assert main(["export", A1, A2, A3, "--no-progress"]) == 0
    path.write_text(capsys.readouterr().out)
    assert "demo-pass" not in path.read_text() and "fingerprint" in path.read_text()
    assert main(["plan", str(path), "--no-progress"]) == 0
    assert "Nothing to change" in capsys.readouterr().out

    monkeypatch.setenv("NEW_PW", "from-the-environment")
    path.write_text(
        path.read_text()
        + f'\n["{A3}".CarrierService]\nurl = "https://l.example.com/c"\npassword = {{ env = "NEW_PW" }}\n'
    )
    path.write_text(path.read_text().replace(f'["{A3}"]\n', ""))
    assert main(["plan", str(path), "--format", "json", "--no-progress"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["counts"] == {"create": 1, "update": 0, "delete": 0, "keep": 4}
    assert "from-the-environment" not in json.dumps(document)

    journal = tmp_path / "journal.jsonl"
    assert main(["apply", str(path), "--yes", "--journal", str(journal), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 done" in out
    assert sim.registrations(A3)[0]["password"] == "from-the-environment"
    assert main(["plan", str(path), "--no-progress"]) == 0
    capsys.readouterr()

    monkeypatch.setenv("ROTATED", "rotated-pw")
    accounts = tmp_path / "accounts.txt"
    accounts.write_text(f"{A1}\n{A3}  # the new one\n")
    argv = ["rotate", "--accounts-file", str(accounts), "--password-env", "ROTATED", "--no-progress", "--yes"]
    assert main(argv) == 0
    rotated = capsys.readouterr()
    assert "0 listeners still on another password" in rotated.out and "value of ROTATED" in rotated.err
    with_credentials = [r for r in sim.registrations(A1) + sim.registrations(A3) if r["username"] or r["password"]]
    assert {r["password"] for r in with_credentials} == {"rotated-pw"} and len(with_credentials) == 2
    for written in (path, journal):
        text = written.read_text()
        assert "rotated-pw" not in text and "from-the-environment" not in text and "demo-pass" not in text


def test_plan_fails_with_1_on_bad_files_and_unreadable_accounts(
    served: SimulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f'["{A1}".CarrierService]\nurl = "ftp://l.example.com/c"\n')
    assert main(["plan", str(bad)]) == 1
    assert "bad.toml: [0000123456-00001.CarrierService] url" in capsys.readouterr().err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('["9999999999-00001"]\n')
    assert main(["plan", str(unknown), "--no-progress"]) == 1
    assert main(["plan", str(tmp_path / "missing.toml")]) == 1
    assert main(["plan", "\udcff.toml"]) == 1  # bytes that were not UTF-8, as Python keeps them
    assert "is not valid UTF-8 text" in capsys.readouterr().err


def test_apply_asks_and_refuses_without_a_terminal(
    served: SimulatorServer,
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\n')
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["apply", str(path), "--no-progress"]) == 2
    assert "--yes" in capsys.readouterr().err and sim.registrations(A3) == []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n" if "Apply 1 change to" in prompt else "?")
    assert main(["apply", str(path), "--no-progress"]) == 0
    assert "Nothing was changed" in capsys.readouterr().out and sim.registrations(A3) == []
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["apply", str(path), "--no-progress", "--journal", str(tmp_path / "j.jsonl")]) == 0
    assert [r["serviceName"] for r in sim.registrations(A3)] == ["CarrierService"]


def test_plan_exit_codes_in_a_shell_script(served: SimulatorServer, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\n')
    script = """
        tskit plan c.toml --no-progress > /dev/null
        case $? in
          0) echo in-sync ;;
          2) echo drift; tskit apply c.toml --yes --journal j.jsonl --no-progress > /dev/null && echo applied ;;
          *) echo failed ;;
        esac
        tskit plan c.toml --no-progress > /dev/null; echo "after: $?"
        tskit plan nothing-here.toml 2> /dev/null; echo "missing: $?"
    """
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n")[:-1] == ["drift", "applied", "after: 0", "missing: 1"], done.stderr


def test_export_to_a_file_and_unreadable_accounts(
    served: SimulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "callbacks.toml"
    assert main(["export", A1, A2, "--output", str(out), "--no-progress"]) == 0
    assert "Wrote" in capsys.readouterr().err
    text = out.read_text()
    assert f"[{A2}.NiddService]" in text and "demo-pass" not in text
    assert main(["export", A1, "9999999999-00001", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "1 account could not be read" in captured.err and captured.out == ""
    assert "  9999999999-00001: " in captured.err  # each account with its reason
    assert main(["export", A1, "9999999999-00001", "--allow-partial", "--no-progress"]) == 4
    captured = capsys.readouterr()
    assert f"[{A1}.CarrierService]" in captured.out and "9999999999-00001" not in captured.out
    assert "warning: 1 account could not be read and is not in the export" in captured.err


@pytest.mark.parametrize(
    "argv",
    [["plan", "--bogus", "c.toml"], ["plan", "c.toml", "--format", "yaml"], ["plan"]],
)
def test_usage_errors_of_plan_exit_1_not_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    assert "usage: tskit" in capsys.readouterr().err  # argparse's message is kept


def test_usage_errors_of_other_commands_still_exit_2() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["export", "--bogus"])
    assert caught.value.code == 2


def test_ctrl_d_at_the_prompt_changes_nothing(
    served: SimulatorServer,
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\n')
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)

    def eof(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", eof)
    assert main(["apply", str(path), "--no-progress"]) == 0
    assert "Nothing was changed" in capsys.readouterr().out and sim.registrations(A3) == []


@pytest.mark.parametrize("where", ["folder", "missing-folder"])
def test_paths_that_cannot_be_written_are_one_line_errors(
    served: SimulatorServer, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    target = str(tmp_path) if where == "folder" else str(tmp_path / "nope" / "x")
    assert main(["export", A1, "-o", target, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"tskit export: cannot write {target}" in err and "Traceback" not in err
    path = tmp_path / "c.toml"
    path.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\n')
    assert main(["apply", str(path), "--yes", "--journal", target, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "cannot write the journal" in err and len(err.strip().splitlines()) == 1
    assert sim.registrations(A3) == [] and not (tmp_path / "nope").exists()


def test_a_short_or_empty_fingerprint_key_is_a_clear_error(
    served: SimulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'["{A3}"]\n')
    monkeypatch.setenv("TSKIT_FINGERPRINT_KEY", "short")
    assert main(["plan", str(path), "--no-progress"]) == 1
    assert "TSKIT_FINGERPRINT_KEY: is 5 bytes long" in capsys.readouterr().err
    monkeypatch.delenv("TSKIT_FINGERPRINT_KEY")
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "fingerprint.key").write_text("")
    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(folder))
    assert main(["plan", str(path), "--no-progress"]) == 1
    assert "does not hold a fingerprint key" in capsys.readouterr().err


def test_the_first_fingerprint_key_made_by_many_processes_at_once_is_one_key(tmp_path: Path) -> None:
    code = "from tskit._fingerprint import load_key; print(load_key().hex())"
    env = {**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path)}
    env.pop("TSKIT_FINGERPRINT_KEY", None)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(8)
    ]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and len(keys.pop()) == 64
    assert [p.name for p in tmp_path.iterdir()] == ["fingerprint.key"]


def test_apply_on_the_embedded_simulator_says_it_keeps_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\n')
    assert main(["apply", str(path), "--yes", "--journal", str(tmp_path / "j.jsonl"), "--no-progress"]) == 0
    assert "keeps nothing between runs" in capsys.readouterr().err and "tskit simulator" in EMBEDDED_NOTICE


def test_rotate_refuses_unknown_services_and_says_when_nothing_matched(
    served: SimulatorServer, sim: Simulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROTATED", "rotated-pw")
    assert main(["rotate", A1, "--services", "CarierService", "--password-env", "ROTATED", "--no-progress"]) == 2
    assert "did you mean 'CarrierService'" in capsys.readouterr().err
    assert main(["rotate", A3, "--password-env", "ROTATED", "--no-progress", "--yes"]) == 1
    assert "No listener matched" in capsys.readouterr().out
    assert sim.count("register") == 0


def test_the_commands_speak_in_plain_lines_and_flags(
    served: SimulatorServer,
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\n')
    assert main(["plan", str(path), "--no-progress"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("Plan for ") and "<" not in out and "After a rotation" not in out
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["apply", str(path), "--no-progress"]) == 2
    assert "tskit apply: apply" not in capsys.readouterr().err
    assert main(["apply", str(path), "--yes", "--no-progress", "--journal", str(tmp_path / "j.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "\nApplied: 1 done" in out and "ApplyResult" not in out and "<" not in out

    monkeypatch.setenv("ROTATED", "rotated-pw")
    monkeypatch.setenv("OLD_PW", "the-old-pw")
    clear = tmp_path / "clear.toml"
    clear.write_text(
        f'["{A3}".DeviceUsage]\nurl = "http://l.example.com/u"\nusername = "u"\npassword = {{ env = "OLD_PW" }}\n'
    )
    assert main(["apply", str(clear), "--yes", "--no-progress", "--journal", str(tmp_path / "k.jsonl")]) == 0
    capsys.readouterr()
    argv = ["rotate", A3, "--password-env", "ROTATED", "--no-progress", "--yes", "--journal", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--allow-http to send it anyway" in err and "allow_http" not in err
    assert main(["rotate", A3, "--password-env", "ROTATED", "--allow-http", "--no-progress", "--yes"]) == 0
    rotated = capsys.readouterr()
    assert rotated.out.startswith("Rotated: ") and "RotationResult" not in rotated.out
    assert "--include-without-credentials to rotate" in rotated.out and "include_without" not in rotated.out
    assert "ROTATED" not in rotated.out and rotated.err.count("value of ROTATED") == 1
    assert main(["export", A1, "9999999999-00001", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "add --allow-partial to export the others" in err and "allow_partial=" not in err
    assert "ApiError" not in err and "HTTP 400" in err


def test_the_rotation_hint_shows_only_when_a_password_a_listener_has_would_change(
    served: SimulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEW_PW", "a-new-password")
    first = tmp_path / "first.toml"
    first.write_text(f'["{A3}".CarrierService]\nurl = "https://l.example.com/c"\npassword = {{ env = "NEW_PW" }}\n')
    assert main(["plan", str(first), "--no-progress"]) == 2
    out = capsys.readouterr().out
    assert "1 listener password would be set or changed" in out and "After a rotation" not in out
    changed = tmp_path / "changed.toml"
    changed.write_text(
        f'["{A1}".CarrierService]\nurl = "https://listener.example.com/thingspace/carrier"\n'
        'username = "tsuser"\npassword = { env = "NEW_PW" }\n'
    )
    assert main(["plan", str(changed), "--no-progress"]) == 2
    assert "After a rotation, update the file's variables" in capsys.readouterr().out
