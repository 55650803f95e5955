"""The rough edges a newcomer met on the command line, each gone: what is said, where, and in what order."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tskit
from tests.test_cli_terminal import answer_on_pty
from tskit._errors import scrub
from tskit._texts import ACCOUNT_NOT_FOUND, FIXED_TEXTS, LOGIN_FAILED
from tskit.cli import main
from tskit.ops import progress_bar
from tskit.simulator import Simulator, SimulatorServer
from tskit.simulator._demo import demo_env

LISTED = "0000123456-00001"  # CarrierService with a password, DeviceUsage without
EMPTY = "0000123456-00003"
UNKNOWN = "9999999999-00001"


@pytest.fixture
def sim(cli_simulator: Simulator) -> Simulator:
    return cli_simulator


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_audit_names_unreadable_accounts_on_stderr_in_csv_and_json(sim, capsys, fmt: str) -> None:
    code, out, err = run(capsys, "audit", LISTED, UNKNOWN, "--format", fmt)
    assert code == 4
    assert "1 account could not be read" in err and f"  {UNKNOWN}: ApiError 400" in err
    assert "was not found" in err
    assert "could not be read" not in out  # stdout keeps the data alone


def write_state(tmp_path: Path, service: str, url: str = "https://l.example.com/c") -> str:
    path = tmp_path / "state.toml"
    path.write_text(f'["{EMPTY}".{service}]\nurl = "{url}"\n')
    return str(path)


def test_hints_name_only_options_the_command_has(sim, capsys, tmp_path) -> None:
    # plan has no --allow-unknown-service nor --allow-any-port: the file says them for itself
    code, _, err = run(capsys, "plan", write_state(tmp_path, "CarierService"), "--no-progress")
    assert code == 1 and "did you mean 'CarrierService'" in err
    assert "set allow_unknown_service = true under [tskit] in the file" in err and "--allow-unknown" not in err
    code, _, err = run(capsys, "plan", write_state(tmp_path, "CarrierService", "https://l.example.com:8443/c"))
    assert code == 1 and "set allow_any_port = true under [tskit] in the file" in err and "--allow-any" not in err
    # deregister and register have the flags: they are named
    code, _, err = run(capsys, "deregister", EMPTY, "CarierService", "--yes")
    assert code == 2 and "add --allow-unknown-service" in err
    code, _, err = run(capsys, "register", EMPTY, "CarrierService", "https://l.example.com:8443/c", "--no-password")
    assert code == 2 and "add --allow-any-port" in err
    assert sim.count("register") == 0 and sim.count("deregister") == 0


def test_rotate_needs_yes_without_a_terminal(sim, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ROTATED", "rotated-pw-1")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal
    code, _, err = run(capsys, "rotate", LISTED, "--password-env", "ROTATED", "--no-progress")
    assert code == 2 and "--yes is needed when there is no terminal" in err
    assert sim.count("register") == 0
    code, out, _ = run(capsys, "rotate", LISTED, "--password-env", "ROTATED", "--no-progress", "--yes")
    assert code == 0 and out.startswith("Rotated: ") and sim.count("register") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
@pytest.mark.parametrize(("keys", "rotated"), [(b"n\n", False), (b"y\n", True)])
def test_rotate_asks_on_a_terminal_as_apply_does(keys: bytes, rotated: bool) -> None:
    argv = ["rotate", LISTED, "--password-env", "ROTATED", "--no-progress"]
    code, text = answer_on_pty(argv, keys, prompt=b"[y/N] ", ROTATED="rotated-pw-2")
    assert code == 0, text
    shown = text.index(f"rotate {LISTED} CarrierService https://listener.example.com/thingspace/carrier")
    assert shown < text.index("Move 1 listener (every service) on embedded simulator to the new password? [y/N]")
    assert ("Rotated: " in text) is rotated and ("Nothing was changed." in text) is not rotated


def test_rotate_refuses_a_plain_http_listener_before_it_asks(sim, capsys, monkeypatch) -> None:
    # the question comes once every check passed: never a "y" answered only to be refused
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked: list[str] = []
    monkeypatch.setenv("ROTATED", "rotated-pw-3")
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))

    def answer(question: str = "") -> str:
        asked.append(question)
        return "y"

    monkeypatch.setattr("builtins.input", answer)
    code, _, err = run(capsys, "rotate", "0000123456-00002", "--password-env", "ROTATED", "--no-progress")
    assert code == 2 and "clear text" in err and asked == [], err
    assert sim.count("register") == 0


def test_a_store_path_that_cannot_be_made_is_named_not_the_socket(capsys) -> None:
    code, _, err = run(capsys, "listen", "--no-auth", "--store", "/proc/nope/x.db")
    assert code == 2
    assert "message store /proc/nope/x.db" in err and "cannot listen" not in err


@pytest.mark.parametrize(
    ("argv", "guess"), [(["audit", LISTED, "--fromat", "csv"], "--format"), (["listen", "--prot", "8080"], "--port")]
)
def test_mistyped_options_get_a_did_you_mean(capsys, argv: list[str], guess: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"(did you mean {guess}?)" in capsys.readouterr().err


def test_the_password_is_asked_after_the_notice_and_what_would_be_replaced(sim, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    shown_before: list[str] = []

    def answer(question: str) -> str:
        shown_before.append("question")
        return "y"

    def password(prompt: str) -> str:
        shown_before.append(capsys.readouterr().err)
        return "new-listener-pw"

    monkeypatch.setattr("builtins.input", answer)
    monkeypatch.setattr("getpass.getpass", password)
    code = main(["register", LISTED, "CarrierService", "https://new.example.com/c"])
    assert code == 0
    assert shown_before[0] == "question"  # the replace is confirmed first, then the password asked for
    assert "embedded ThingSpace simulator" in shown_before[1]
    assert "would replace CarrierService of 0000123456-00001 (currently" in shown_before[1]
    carrier = [r for r in sim.registrations(LISTED) if r["serviceName"] == "CarrierService"]
    assert carrier[0]["password"] == "new-listener-pw"


def test_ctrl_c_ends_the_line_a_progress_bar_was_drawing(sim, monkeypatch, capsys) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Terminal()
    monkeypatch.setattr("sys.stderr", err)

    drawing: list[object] = []  # held, as the loop reading the accounts holds its bar

    def interrupted(self: object, *args: object, **kwargs: object) -> None:
        drawing.append(progress_bar(1, enabled=True, description="Auditing"))  # left open by the interruption
        raise KeyboardInterrupt

    monkeypatch.setattr(tskit.ThingSpace, "audit", interrupted)
    assert main(["audit", LISTED]) == 130
    drawn = err.getvalue()
    drawn = drawn[drawn.index("\rAuditing") :]
    assert drawn.endswith("\n") and drawn.count("\n") == 1, repr(drawn)  # the line ended, once
    # at a prompt (no bar), Ctrl-C ends the line too
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)

    def ctrl_c_at(question: str) -> str:
        print(question, end="")  # as input() writes it
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", ctrl_c_at)
    capsys.readouterr()
    assert main(["deregister", LISTED, "CarrierService"]) == 130
    assert capsys.readouterr().out.endswith("? [y/N] \n")
    assert sim.count("deregister") == 0


def test_a_url_without_a_scheme_is_said_so(sim, capsys) -> None:
    code, _, err = run(capsys, "register", EMPTY, "CarrierService", "listener.example.com/c", "--no-password")
    assert code == 2 and "URL: has no scheme (https://... or http://...)" in err and "(none)" not in err


def test_the_demo_ends_with_what_to_do_next(capsys) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    tail = out[out.rindex("What next") :]
    assert "tskit --help" in tail and "tskit simulator" in tail and "THINGSPACE_CLIENT_ID" in tail


# -- tskit's own fixed words are kept; only values are masked ------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    with Simulator().serve() as server:
        for key, value in demo_env(server.base_url).items():
            monkeypatch.setenv(key, value)
        yield server


def test_a_common_word_password_leaves_the_fixed_login_text_whole(served, capsys, monkeypatch) -> None:
    monkeypatch.setenv("THINGSPACE_PASSWORD", "wrong")
    code, _, err = run(capsys, "list", LISTED)
    assert code == 1 and "Log in failed: unknown user name or wrong password." in err and "***" not in err


def test_fixed_texts_keep_their_words_and_values_are_still_masked() -> None:
    assert scrub(LOGIN_FAILED, ["wrong"]) == LOGIN_FAILED
    assert scrub(ACCOUNT_NOT_FOUND.format("wrong-acct"), ["wrong"]) == "Account ***-acct was not found."
    # anything more than the fixed text is a server's own text: every secret is masked in it
    assert scrub(LOGIN_FAILED + " You sent wrong.", ["wrong"]) == (
        "Log in failed: unknown user name or *** password. You sent ***."
    )
    assert scrub(f"Log in failed: wrong is not the password of {'u'}.", ["wrong"]) == (
        "Log in failed: *** is not the password of u."
    )
    assert "hunter2" not in scrub(ACCOUNT_NOT_FOUND.format("hunter2"), ["hunter2"])


def test_the_fixed_texts_are_the_simulators() -> None:
    """Two copies on purpose (the simulator never imports the client); a change to one shows here."""
    sources = "".join(p.read_text() for p in Path(tskit.simulator.__file__).parent.glob("*.py"))
    for fixed in FIXED_TEXTS:
        for part in fixed.split("{}"):
            assert part in sources, fixed
