"""The tskit command speaks in command-line words: flags, help, exit codes, clean output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import tskit
from tskit.cli import main

DEMO = ["0000123456-00001", "0000123456-00002", "0000123456-00003"]


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("THINGSPACE_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def sim(cli_simulator: tskit.simulator.Simulator) -> tskit.simulator.Simulator:
    return cli_simulator


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_bare_tskit_prints_help_and_exits_0(capsys) -> None:
    code, out, err = run(capsys)
    assert code == 0 and err == ""
    assert out.startswith("usage: tskit") and "audit" in out and "--version" in out


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"tskit {tskit.__version__}\n"


@pytest.mark.parametrize(
    ("argv", "words", "python_words"),
    [
        (
            ["register", DEMO[2], "CarrierService", "https://l.example.com:8443/c"],
            "add --allow-any-port",
            "allow_any_port",
        ),
        (
            ["register", DEMO[2], "CarierService", "https://l.example.com/c"],
            "SERVICE: unknown service 'CarierService'; did you mean 'CarrierService'?",
            "allow_unknown_service",
        ),
        (["deregister", DEMO[0], "CarierService", "--yes"], "add --allow-unknown-service", "SERVICE_CATALOGUE"),
        (["register", DEMO[2], "CarrierService", "https://u:p@l.example.com/c"], "--username and", "username="),
    ],
)
def test_errors_name_flags_not_parameters(sim, capsys, argv, words, python_words) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert words in err and python_words not in err
    assert list(sim.requests) == []


def test_a_refused_login_points_at_reset_login(tmp_path) -> None:
    from tskit.simulator import Simulator

    with Simulator().serve() as server:
        env = {**_env_without_credentials(), **server.env(), "THINGSPACE_PASSWORD": "wrong-pw"}
        env["TSKIT_CONFIG_DIR"] = str(tmp_path)
        texts = [
            subprocess.run([sys.executable, "-m", "tskit", "list", DEMO[0]], env=env, capture_output=True, text=True)
            for _ in range(2)
        ]
    assert [t.returncode for t in texts] == [1, 1]
    assert "reset()" not in texts[1].stderr
    assert "reconnect" not in texts[0].stderr and "`tskit reset-login`" in texts[0].stderr
    assert "Not sent" in texts[1].stderr and "`tskit reset-login`" in texts[1].stderr
    # refused by an earlier run: the sentence says what happened, the remedy what to do, once
    assert texts[1].stderr.count("reset-login") == 1 and "Fix the password" not in texts[1].stderr
    assert texts[1].stderr.rstrip().endswith("Fix the credentials; run `tskit reset-login` once they are fixed")
    # only the error: tskit's own warnings show with --verbose
    assert texts[0].stderr.count("\n") == 1 and texts[0].stderr.startswith("tskit list: ")


def test_an_audit_whose_login_is_refused_says_it_in_the_commands_words(tmp_path) -> None:
    from tskit.simulator import Simulator

    with Simulator().serve() as server:
        env = {**_env_without_credentials(), **server.env(), "THINGSPACE_PASSWORD": "wrong-pw"}
        env["TSKIT_CONFIG_DIR"] = str(tmp_path)
        done = subprocess.run(
            [sys.executable, "-m", "tskit", "audit", DEMO[0], "--no-progress"], env=env, capture_output=True, text=True
        )
    assert done.returncode == 1 and done.stderr.startswith("tskit audit: ThingSpace answered 400 to POST")
    assert "reconnect" not in done.stderr and done.stderr.rstrip().endswith("Fix the user name and password")


def test_expect_is_checked_with_a_suggestion_before_anything_is_sent(sim, capsys) -> None:
    code, out, err = run(capsys, "audit", *DEMO, "--expect", "CarierService")
    assert code == 2 and out == ""
    assert "--expect: unknown service 'CarierService'; did you mean 'CarrierService'?" in err
    assert list(sim.requests) == []
    code, _, _ = run(capsys, "audit", *DEMO, "--expect", "BrandNewService", "--allow-unknown-service")
    assert code == 0


def test_every_account_is_checked_before_the_first_request(sim, capsys) -> None:
    code, _, err = run(capsys, "list", DEMO[0], "not an account!")
    assert code == 2 and "not an account!" in err
    assert list(sim.requests) == []


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_numbers_are_checked_by_the_parser(sim, capsys, value) -> None:
    with pytest.raises(SystemExit) as done:
        main(["audit", *DEMO, "--concurrency", value])
    assert done.value.code == 2
    assert "--concurrency" in capsys.readouterr().err
    assert list(sim.requests) == []


def test_the_audit_table_lists_every_finding_unless_limited(sim, capsys) -> None:
    from tskit.simulator import seed_fleet

    fleet = seed_fleet(sim, 40)
    code, out, _ = run(capsys, "audit", *fleet, "--expect", "CarrierService,DeviceUsage", "--no-progress")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("  [")]
    # 44 findings, and 56 more: the 56 listeners on example.com, which ThingSpace cannot reach
    assert len(lines) == 100 and "more in" not in out
    assert len([line for line in lines if "reserved for documentation" in line]) == 56
    _, out, _ = run(capsys, "audit", *fleet, "--expect", "CarrierService", "--no-progress", "--limit", "5")
    assert len([line for line in out.splitlines() if line.startswith("  [")]) == 5
    assert "more (use --limit to see more)" in out and "more in .findings" not in out
    assert out.startswith("Audit of embedded simulator at ")  # a header, not a Python repr


def test_list_limit_says_what_it_left_out(sim, capsys) -> None:
    code, out, _ = run(capsys, "list", DEMO[0], "--limit", "1")
    assert code == 0 and "CarrierService" in out and "DeviceUsage" not in out
    assert "... 1 more row (--limit)" in out
    with pytest.raises(SystemExit) as done:
        main(["list", DEMO[0], "--limit", "1", "--format", "csv"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "usage: tskit list" in err and "--limit: applies to the table format only" in err


@pytest.mark.parametrize(
    "argv", [["list"], ["audit", DEMO[0]], ["plan", "c.toml"], ["register", DEMO[0], "CarrierService", "https://l.x/"]]
)
def test_an_unknown_option_shows_the_usage_of_its_command(argv, capsys) -> None:
    command = argv[0]
    if command == "plan":
        assert main([*argv, "--bogus"]) == 1  # plan keeps 2 for "changes pending"
    else:
        with pytest.raises(SystemExit):
            main([*argv, "--bogus"])
    err = capsys.readouterr().err
    assert f"usage: tskit {command} " in err and f"tskit {command}: error: unrecognized arguments: --bogus" in err


def test_the_help_puts_every_exit_code_under_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    codes, environment = out.split("exit codes:")[1].split("environment:")
    assert "tskit plan: 0 nothing would change" in codes and "tskit plan" not in environment


def test_a_username_with_spaces_is_refused_in_one_plain_sentence(capsys) -> None:
    code, _, err = run(capsys, "register", DEMO[0], "CarrierService", "https://l.example.com/c", "--username", " u ")
    assert code == 2 and "--username: starts or ends with a space (no space at either end: it would" in err
    assert "((" not in err and "))" not in err


def test_json_is_clean(sim, capsys) -> None:
    _, out, _ = run(capsys, "list", DEMO[2], "--format", "json")
    assert out == "[]\n"
    _, out, _ = run(capsys, "list", DEMO[0], "--format", "json")
    assert "\\/" not in out and "https://listener.example.com/" in out
    assert [row["service_name"] for row in json.loads(out)] == ["CarrierService", "DeviceUsage"]


def test_severities_are_coloured_on_a_terminal_only(sim, capsys, monkeypatch) -> None:
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    for stream, no_color, coloured in [
        (Terminal(), None, True),
        (Terminal(), "1", False),
        (io.StringIO(), None, False),
    ]:
        if no_color:
            monkeypatch.setenv("NO_COLOR", no_color)
        monkeypatch.setattr("sys.stdout", stream)
        main(["audit", *DEMO, "--expect", "CarrierService", "--no-progress"])
        text = stream.getvalue()
        assert "[high]" in text or "[medium]" in text or "[low]" in text
        assert ("\033[" in text) is coloured


def _env_without_credentials(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THINGSPACE_") and k != "NO_COLOR"}
    return {**env, **more}


def test_the_simulator_notice_names_what_was_misspelt(tmp_path) -> None:
    env = _env_without_credentials(TSKIT_CONFIG_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "tskit", "list", DEMO[0]], env=env, capture_output=True, text=True, check=True
    )
    assert "using the embedded simulator" in done.stderr and "CarrierService" in done.stdout
    env["THINGSPACE_CLIENTID"] = "my-app-key"
    done = subprocess.run([sys.executable, "-m", "tskit", "list", DEMO[0]], env=env, capture_output=True, text=True)
    # a cron job must not act on simulator data because of a typo: refused, naming the right name
    assert done.returncode == 2 and done.stdout == "" and "simulator" not in done.stderr.split("\n")[0]
    assert "THINGSPACE_CLIENTID is set: did you mean THINGSPACE_CLIENT_ID?" in done.stderr
    assert "THINGSPACE_CLIENT_SECRET" in done.stderr and "my-app-key" not in done.stderr


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        ({"thingspace_client_id": "k"}, "thingspace_client_id is set: did you mean THINGSPACE_CLIENT_ID?"),
        ({"THINGSPACE_BASEURL": "https://x"}, "THINGSPACE_BASEURL is set: did you mean THINGSPACE_BASE_URL?"),
        ({"THINGSPACE_BASE_URL": "https://thingspace.verizon.com"}, "THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET"),
        ({"THINGSPACE_CLIENT_ID": "", "THINGSPACE_PASSWORD": ""}, "THINGSPACE_USERNAME"),
    ],
)
def test_any_thingspace_variable_without_all_four_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], words: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, "list", DEMO[0])
    assert code == 2 and out == "" and words in err and "using the embedded simulator" not in err
    assert main(["list", DEMO[0], "--simulator"]) == 0  # asking for the simulator still works


def test_no_notice_when_the_simulator_is_asked_for(tmp_path) -> None:
    env = _env_without_credentials(TSKIT_CONFIG_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "tskit", "list", DEMO[0], "--simulator"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == ""


def _interrupt(args: list[str], env: dict[str, str], wait_for: str, stream: str = "stdout") -> tuple[int, str]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pipe = proc.stdout if stream == "stdout" else proc.stderr
        assert pipe is not None
        deadline = time.monotonic() + 30
        while wait_for not in pipe.readline():
            assert time.monotonic() < deadline and proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.server
def test_ctrl_c_during_an_audit_ends_quietly_with_130(tmp_path) -> None:
    from tskit.simulator import simulator_process

    with simulator_process("--fleet", "40", "--latency", "3") as server_env:
        env = _env_without_credentials(**server_env, TSKIT_CONFIG_DIR=str(tmp_path))
        accounts = tmp_path / "accounts.txt"
        accounts.write_text("\n".join(f"{7000000000 + i}-00001" for i in range(40)))
        # a line on stdout as each request leaves: Ctrl-C once the audit's first one is on its way
        script = (
            "import sys, httpx2; from tskit.cli import main\n"
            "send = httpx2.AsyncHTTPTransport.handle_async_request\n"
            "async def sending(self, request):\n"
            "    print('sending', flush=True)\n"
            "    return await send(self, request)\n"
            "httpx2.AsyncHTTPTransport.handle_async_request = sending\n"
            f"sys.exit(main(['audit', '--accounts-file', {str(accounts)!r}, '--no-progress']))\n"
        )
        code, err = _interrupt([sys.executable, "-c", script], env, "sending")
    assert code == 130
    assert "Task was destroyed" not in err and "Traceback" not in err


@pytest.mark.server
def test_ctrl_c_stops_the_simulator_with_130(tmp_path) -> None:
    env = _env_without_credentials(TSKIT_CONFIG_DIR=str(tmp_path))
    code, err = _interrupt(
        [sys.executable, "-m", "tskit", "simulator", "--port", "0"], env, "export THINGSPACE_PASSWORD"
    )
    assert code == 130 and "Traceback" not in err


@pytest.mark.server
def test_ctrl_c_stops_the_listener_with_130(tmp_path) -> None:
    env = _env_without_credentials(TSKIT_CONFIG_DIR=str(tmp_path))
    command = [sys.executable, "-m", "tskit", "listen", "--port", "0", "--store", str(tmp_path / "m.db"), "--no-auth"]
    code, err = _interrupt(command, env, "Listening for ThingSpace callbacks")
    assert code == 130 and "Traceback" not in err


def test_a_mistyped_command_gets_a_did_you_mean(capsys) -> None:
    code, out, err = run(capsys, "lsit", DEMO[0])
    assert code == 2 and out == "" and "unknown command 'lsit': did you mean 'list'?" in err


def test_password_on_the_command_line_is_refused_in_words(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["register", DEMO[2], "CarrierService", "https://l.example.com/c", "--password", "x"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "passwords are never taken on the command line" in err
    assert "--password-env or --password-stdin" in err and "ambiguous" not in err


def test_a_bad_accounts_file_line_is_named(capsys, tmp_path) -> None:
    path = tmp_path / "accounts.txt"
    path.write_text(f"# fleet\n{DEMO[0]}\n\nnot an account!\n", encoding="utf-8")
    code, _, err = run(capsys, "audit", "--accounts-file", str(path), "--no-progress")
    assert code == 2 and f"{path}, line 4:" in err and "'not an account!'" in err


def test_services_table_is_left_aligned_and_fits_100_columns(capsys) -> None:
    code, out, _ = run(capsys, "services")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("SERVICE ") and lines[1].startswith("AlertService ")
    assert max(len(line) for line in lines) <= 100


def test_audit_words_plural_and_plain(sim, capsys) -> None:
    from tskit.simulator import SimulatorConfig

    sim.config = SimulatorConfig()
    sim.add_account("0000777777-00001", users=["demo-user"])
    sim.register("0000777777-00001", "CarrierService", "https://8.8.8.8/c", "", "")  # 1 finding: no credentials
    code, out, _ = run(capsys, "audit", "0000777777-00001", "9999999999-00001", "--no-progress")
    assert code == 4 and ", 1 finding\n" in out
    assert "1 findings" not in out and "1 callbacks" not in out and "1 accounts" not in out
    [unreadable] = [line for line in out.splitlines() if "[unreadable]" in line]
    assert "ApiError" not in unreadable and "ThingSpace said no (" in unreadable


def test_audit_help_says_when_it_exits_non_zero(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exit non-zero on findings" not in out and "with --fail-on, exit 3 on findings" in out


def test_demo_speaks_cli_words(capsys) -> None:
    code, out, _ = run(capsys, "demo")
    assert code == 0 and "tskit.SERVICE_CATALOGUE" not in out and "allow_unknown_service" not in out
    assert "<Audit of" not in out and "Audit of embedded simulator" in out


def test_no_did_you_mean_for_an_unrelated_service() -> None:
    from tskit._validate import suggest_service

    assert suggest_service("NewFancyService") is None and suggest_service("CarierService") == "CarrierService"


def test_force_color_colours_a_pipe_and_no_color_wins(sim, capsys, monkeypatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert "\033[" in run(capsys, "audit", *DEMO, "--no-progress")[1]
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\033[" not in run(capsys, "audit", *DEMO, "--no-progress")[1]


def test_option_and_variable_errors_name_the_flag_or_variable(sim, capsys, monkeypatch) -> None:
    code, _, err = run(capsys, "audit", DEMO[0], "--concurrency", "100000")
    assert code == 2 and "--concurrency: 100000 is out of range" in err and list(sim.requests) == []
    env = _env_without_credentials(
        THINGSPACE_BASE_URL="ftp://x",
        THINGSPACE_CLIENT_ID="a",
        THINGSPACE_CLIENT_SECRET="b",
        THINGSPACE_USERNAME="c",
        THINGSPACE_PASSWORD="d",
    )
    done = subprocess.run([sys.executable, "-m", "tskit", "list", DEMO[0]], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "THINGSPACE_BASE_URL: 'ftp://x'" in done.stderr and "base_url" not in done.stderr
    env_bytes = {**{k.encode(): v.encode() for k, v in env.items()}, b"THINGSPACE_BASE_URL": b"http://127.0.0.1:9/\xff"}
    for command in (["list", DEMO[0]], ["audit", DEMO[0]]):
        done = subprocess.run([sys.executable, "-m", "tskit", *command], env=env_bytes, capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "THINGSPACE_BASE_URL: 'http://127.0.0.1:9/\\udcff' is not valid UTF-8 text" in done.stderr


def test_an_unreachable_thingspace_is_named_in_plain_words(capsys, monkeypatch) -> None:
    for name, value in {
        "THINGSPACE_BASE_URL": "http://127.0.0.1:9",
        "THINGSPACE_CLIENT_ID": "cid",
        "THINGSPACE_CLIENT_SECRET": "a-client-secret",
        "THINGSPACE_USERNAME": "uws-user",
        "THINGSPACE_PASSWORD": "a-uws-password",
    }.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, "audit", DEMO[0], "--no-progress")
    # not one account could be read, all for one reason: an error (exit 1), said once
    assert code == 1 and err.count("POST /api/ts/v1/oauth2/token: could not connect") == 1, err
    assert "no account could be read" in err and out == ""
    assert "a-client-secret" not in out + err and "a-uws-password" not in out + err
