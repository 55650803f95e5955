"""The tskit command's ThingSpace commands: exit codes, output formats, password handling."""

from __future__ import annotations

import io
import json

import pytest

import tskit
from tskit.cli import main

DEMO = ["0000123456-00001", "0000123456-00002", "0000123456-00003"]


@pytest.fixture
def sim(cli_simulator: tskit.simulator.Simulator) -> tskit.simulator.Simulator:
    return cli_simulator


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_audit_table_and_fail_on(sim, capsys) -> None:
    code, out, _ = run(capsys, "audit", *DEMO, "--expect", "CarrierService", "--fail-on", "high")
    assert code == 3
    assert out.startswith("Audit of embedded simulator") and "credentials-over-http" in out
    # its listeners are on example.com, a documentation name ThingSpace cannot reach: high
    assert run(capsys, "audit", "0000123456-00001", "--fail-on", "high")[0] == 3
    sim.add_account("0000777777-00001", users=["demo-user"])
    sim.register("0000777777-00001", "CarrierService", "https://8.8.8.8/c", "", "")  # public, no credentials
    assert run(capsys, "audit", "0000777777-00001", "--fail-on", "high")[0] == 0
    assert run(capsys, "audit", "0000777777-00001", "--fail-on", "medium")[0] == 3
    assert run(capsys, "audit", "0000123456-00001", "--fail-on", "medium")[0] == 3  # DeviceUsage has no credentials
    assert run(capsys, "audit", "0000123456-00001")[0] == 0  # no --fail-on: findings are reported, not failed


def test_audit_unreadable_account_exits_4(sim, capsys) -> None:
    code, out, _ = run(capsys, "audit", "0000123456-00001", "9999999999-00001")
    assert code == 4 and "[unreadable] 9999999999-00001" in out


def test_audit_csv_and_json(sim, capsys) -> None:
    code, out, _ = run(capsys, "audit", *DEMO, "--format", "csv")
    assert code == 0
    assert out.splitlines()[0] == "account_name,service_name,rule,severity,detail"
    assert "0000123456-00002,CarrierService,credentials-over-http,high," in out
    code, out, _ = run(capsys, "audit", *DEMO, "--format", "json")
    document = json.loads(out)
    assert document["format"] == "tskit-audit/1" and len(document["callbacks"]) == 4
    assert "demo-pass" not in out


def test_accounts_file_with_comments(sim, capsys, tmp_path) -> None:
    accounts = tmp_path / "accounts.txt"
    accounts.write_text("# fleet\n0000123456-00001\n\n0000123456-00002  # north\n")
    code, out, _ = run(capsys, "audit", "--accounts-file", str(accounts), "--format", "json")
    assert code == 0
    assert json.loads(out)["accounts"] == ["0000123456-00001", "0000123456-00002"]


def test_audit_save_then_diff(sim, capsys, tmp_path) -> None:
    snapshot = tmp_path / "before.json"
    assert run(capsys, "audit", *DEMO, "--save", str(snapshot))[0] == 0
    assert "demo-pass" not in snapshot.read_text()
    sim.register("0000123456-00003", "CarrierService", "https://l.example.com/new", "u", "p")
    code, out, _ = run(capsys, "audit", *DEMO, "--diff", str(snapshot), "--format", "csv")
    assert code == 0
    assert out.splitlines() == [
        "account_name,service_name,change,field,old,new",
        "0000123456-00003,CarrierService,added,url,,https://l.example.com/new",
    ]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["audit"], "give account names"),
        (["audit", "../x"], "not account names"),
        (["audit", "0000123456-00001", "--fail-on", "severe"], "unknown severity"),
        (["audit", "0000123456-00001", "--diff", "/nonexistent/old.json"], "--diff"),
        (["audit", "--accounts-file", "/nonexistent/list.txt"], "cannot read the accounts file"),
        (["register", "0000123456-00003", "CarrierService", "https://l.example.com:8443/c"], "port 8443"),
        (
            ["register", "0000123456-00003", "CarrierService", "https://l.example.com/c", "--password-env", "NOPE_X"],
            "NOPE_X is not set",
        ),
        (["deregister", "0000123456-00001", "CarrierService"], "needs --yes"),
    ],
)
def test_usage_errors_exit_2_and_send_nothing(sim, capsys, argv: list[str], words: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and words in err
    assert list(sim.requests) == []


def test_register_reads_the_password_from_the_environment(sim, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LISTENER_PW", "pw-from-env")
    code, out, _ = run(
        capsys,
        "register",
        "0000123456-00003",
        "CarrierService",
        "https://l.example.com/c",
        "--username",
        "u",
        "--password-env",
        "LISTENER_PW",
        "--yes",  # example.com is a documentation name: tskit warns and asks
    )
    assert (code, out) == (0, "Registered CarrierService for 0000123456-00003\n")
    assert sim.registrations("0000123456-00003")[0]["password"] == "pw-from-env"


def test_register_reads_the_password_from_stdin(sim, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-from-stdin\n"))
    code, _, _ = run(
        capsys, "register", "0000123456-00003", "DeviceUsage", "https://l.example.com/u", "--password-stdin", "--yes"
    )
    assert code == 0 and sim.registrations("0000123456-00003")[0]["password"] == "pw-from-stdin"


def test_deregister_with_yes(sim, capsys) -> None:
    code, out, _ = run(capsys, "deregister", "0000123456-00001", "CarrierService", "--yes")
    assert (code, out) == (0, "Deregistered CarrierService for 0000123456-00001\n")
    assert [r["serviceName"] for r in sim.registrations("0000123456-00001")] == ["DeviceUsage"]


def test_deregister_asks_on_a_terminal(sim, capsys, monkeypatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, _ = run(capsys, "deregister", "0000123456-00001", "CarrierService")
    assert code == 0 and "Nothing was changed." in out
    assert "Deregister CarrierService of account 0000123456-00001 on embedded simulator?" in out
    assert len(sim.registrations("0000123456-00001")) == 2 and sim.count("deregister") == 0
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert run(capsys, "deregister", "0000123456-00001", "CarrierService")[0] == 0
    assert len(sim.registrations("0000123456-00001")) == 1


def test_deregister_missing_succeeds_confirmed_by_listing(sim, capsys) -> None:
    code, out, _ = run(capsys, "deregister", "0000123456-00003", "CarrierService", "--yes")
    assert code == 0 and "had no listener" in out


def test_list_formats(sim, capsys) -> None:
    code, out, _ = run(capsys, "list", "0000123456-00001", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["password"] for r in rows] == ["********", ""]
    code, out, _ = run(capsys, "list", "0000123456-00003")
    assert out == "(none)\n"
