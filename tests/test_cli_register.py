"""tskit register never replaces a listener, or registers a risky one, without saying so."""

from __future__ import annotations

import io
import os

import pytest

import tskit
from tskit.cli import main

LISTED = "0000123456-00001"  # CarrierService with a password, DeviceUsage without
EMPTY = "0000123456-00003"


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.upper().startswith("THINGSPACE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LISTENER_PW", "pw-from-env")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal


@pytest.fixture
def sim(cli_simulator: tskit.simulator.Simulator) -> tskit.simulator.Simulator:
    return cli_simulator


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_no_terminal_and_no_password_option_is_refused(sim, capsys) -> None:
    code, _, err = run(capsys, "register", LISTED, "CarrierService", "https://new.example.com/c")
    assert code == 2 and "--password-env" in err and "--password-stdin" in err and "--no-password" in err
    assert sim.count("register") == 0 and sim.registrations(LISTED)[0]["password"] != ""


def test_no_password_is_an_explicit_choice(sim, capsys) -> None:
    code, _, _ = run(capsys, "register", EMPTY, "DeviceUsage", "https://new.example.com/u", "--no-password", "--yes")
    assert code == 0 and sim.registrations(EMPTY)[0]["password"] == ""


def test_a_replace_says_what_it_replaces_and_needs_yes_without_a_terminal(sim, capsys) -> None:
    argv = ["register", LISTED, "CarrierService", "https://new.example.com/c", "--password-env", "LISTENER_PW"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "needs --yes" in err and sim.count("register") == 0
    assert (
        "would replace CarrierService of 0000123456-00001 (currently https://listener.example.com/thingspace/carrier,"
        in err
    )
    assert "password set" in err and "pw-from-env" not in err
    code, out, err = run(capsys, *argv, "--yes")
    assert code == 0 and "would replace CarrierService" in err and "Registered CarrierService" in out
    carrier = [r for r in sim.registrations(LISTED) if r["serviceName"] == "CarrierService"]
    assert carrier[0]["url"] == "https://new.example.com/c"


def test_a_no_at_the_replace_question_sends_nothing_and_asks_no_password(sim, capsys, monkeypatch) -> None:
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return "n"

    def password(prompt: str) -> str:
        asked.append(prompt)
        return "new-listener-pw"

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", ask)
    monkeypatch.setattr("getpass.getpass", password)
    code, out, err = run(capsys, "register", LISTED, "CarrierService", "https://new.example.com/c")
    assert code == 0 and out == "Nothing was changed.\n" and "would replace CarrierService" in err
    assert len(asked) == 1 and asked[0].startswith("Replace the listener (CarrierService of 0000123456-00001")
    assert sim.count("register") == 0 and sim.registrations(LISTED)[0]["url"].endswith("/thingspace/carrier")


def test_a_private_address_is_warned_about_and_needs_yes(sim, capsys) -> None:
    argv = ["register", EMPTY, "DeviceUsage", "http://10.0.0.5/cb", "--no-password"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "warning:" in err and "private" in err and sim.count("register") == 0
    code, _, err = run(capsys, *argv, "--yes")
    assert code == 0 and [r["url"] for r in sim.registrations(EMPTY)] == ["http://10.0.0.5/cb"]


def test_save_is_checked_before_anything_is_read(sim, capsys, tmp_path) -> None:
    for target, words in (
        (tmp_path / "snap.txt", "must end in .json"),
        (tmp_path / "missing" / "snap.json", "does not exist"),
    ):
        code, out, err = run(capsys, "audit", LISTED, "--save", str(target), "--no-progress")
        assert code == 2 and out == "" and "tskit audit: --save: " in err and words in err
        assert "Traceback" not in err
    assert sim.count("list") == 0


@pytest.mark.parametrize("host", ["listener.example.com", "example.org", "hooks.example.net"])
def test_a_documentation_name_is_warned_of_and_needs_yes(sim, capsys, host) -> None:
    argv = ["register", EMPTY, "CarrierService", f"https://{host}/c", "--no-password"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and f"warning: {host} is a name reserved for documentation" in err and "needs --yes" in err
    assert sim.count("register") == 0
    assert run(capsys, *argv, "--yes")[0] == 0 and sim.count("register") == 1


def test_register_and_deregister_on_the_embedded_simulator_say_it_keeps_nothing(sim, capsys) -> None:
    code, _, err = run(capsys, "register", EMPTY, "CarrierService", "https://l.example.com/c", "--no-password", "--yes")
    assert code == 0 and "keeps nothing between runs" in err
    code, _, err = run(capsys, "deregister", EMPTY, "CarrierService", "--yes")
    assert code == 0 and "keeps nothing between runs" in err
