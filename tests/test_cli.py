"""The tskit command: the simulator server other clients can use, the demo, and list."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx2
import pytest

import tskit
from tskit.cli import main
from tskit.simulator import simulator_process as run_simulator_process

pytestmark = pytest.mark.server


@pytest.fixture
def simulator_process() -> Iterator[dict[str, str]]:
    """``tskit simulator --port 0`` in its own process; yields the variables it printed."""
    with run_simulator_process() as env:
        yield env


def test_simulator_command_prints_working_exports(simulator_process: dict[str, str]) -> None:
    env = simulator_process
    assert set(env) == {
        "THINGSPACE_BASE_URL",
        "THINGSPACE_CLIENT_ID",
        "THINGSPACE_CLIENT_SECRET",
        "THINGSPACE_USERNAME",
        "THINGSPACE_PASSWORD",
    }
    assert env["THINGSPACE_BASE_URL"].startswith("http://127.0.0.1:")
    # tskit, configured only by those variables, talks to it over HTTP:
    ts = tskit.connect(
        base_url=env["THINGSPACE_BASE_URL"],
        client_id=env["THINGSPACE_CLIENT_ID"],
        client_secret=env["THINGSPACE_CLIENT_SECRET"],
        username=env["THINGSPACE_USERNAME"],
        password=env["THINGSPACE_PASSWORD"],
    )
    assert not ts.is_simulator
    assert ts.list_callbacks("0000123456-00001")["service_name"].tolist() == ["CarrierService", "DeviceUsage"]
    ts.register_callback("0000123456-00003", "CarrierService", "https://l.example.com/c")
    ts.close()
    # and so does another process, e.g. the tskit command itself:
    done = subprocess.run(
        [sys.executable, "-m", "tskit", "list", "0000123456-00003", "--format", "csv"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == ""  # connections closed cleanly: no "Unclosed client session" at exit
    assert done.stdout.splitlines() == [
        "account_name,service_name,url,username,password",
        "0000123456-00003,CarrierService,https://l.example.com/c,,",
    ]


def test_simulator_answers_a_plain_client(simulator_process: dict[str, str]) -> None:
    base = simulator_process["THINGSPACE_BASE_URL"]
    answer = httpx2.post(
        f"{base}/api/ts/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(simulator_process["THINGSPACE_CLIENT_ID"], simulator_process["THINGSPACE_CLIENT_SECRET"]),
    )
    assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"


def test_demo_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Registered CarrierService for 0000123456-00003" in out
    assert "UnifiedWebService.REQUEST_FAILED.AccountNotFound" in out
    assert "did you mean 'CarrierService'?" in out
    assert "demo-pass" not in out and "s3cret" not in out


def test_list_bad_account_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "../etc"]) == 2
    assert "not account names: '../etc'" in capsys.readouterr().err


def test_list_unknown_account_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "9999999999-00001"]) == 1
    assert "AccountNotFound" in capsys.readouterr().err


def test_help_explains_credentials() -> None:
    out = subprocess.run([sys.executable, "-m", "tskit", "--help"], capture_output=True, text=True, check=True).stdout
    assert "THINGSPACE_CLIENT_ID" in out and "simulator" in out


def test_a_script_that_never_closes_exits_quietly(simulator_process: dict[str, str]) -> None:
    script = "import tskit; print(len(tskit.connect().list_callbacks('0000123456-00001')))"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **simulator_process},
        capture_output=True,
        text=True,
        check=True,
    )
    assert (done.stdout, done.stderr) == ("2\n", "")


def test_cron_runs_with_a_wrong_password_try_to_log_in_once(tmp_path) -> None:
    from tskit.simulator import Simulator

    sim = Simulator()
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "THINGSPACE_PASSWORD": "wrong-pw", "TSKIT_CONFIG_DIR": str(tmp_path)}
        for run in range(6):
            done = subprocess.run(
                [sys.executable, "-m", "tskit", "list", "0000123456-00001"], env=env, capture_output=True, text=True
            )
            assert done.returncode == 1
            assert ("does not try again" if run == 0 else "by another process or run") in done.stderr
        assert sim.count("login") == 1 and not sim.is_locked("demo-user")
        reset = subprocess.run(
            [sys.executable, "-m", "tskit", "reset-login"], env=env, capture_output=True, text=True, check=True
        )
        assert "Forgot the refused or failed logins of demo-user" in reset.stdout
        subprocess.run([sys.executable, "-m", "tskit", "list", "0000123456-00001"], env=env, capture_output=True)
        assert sim.count("login") == 2  # tried again after the reset
