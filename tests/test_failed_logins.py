"""Failed logins in a row, counted per user on disk before each login is sent: never a locked user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

import tskit
from tests.conftest import IN_PROCESS_URL, FakeClock, make_client
from tskit.auth import guard
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME, Simulator, SimulatorConfig

pytestmark = pytest.mark.anyio
ACCOUNT = "0000123456-00001"
WRONG = "wrong-pw-123"
UNKNOWN = SimulatorConfig(login_failure_status=401, login_failure_code="REQUEST_FAILED.Unknown")
RIGHT = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD)


def run_list(env: dict[str, str], base_url: str, password: str = WRONG, client_id: str = DEMO_CLIENT_ID) -> str:
    """``tskit list`` in a process of its own; its stderr."""
    env = {**env, "THINGSPACE_BASE_URL": base_url, "THINGSPACE_PASSWORD": password, "THINGSPACE_CLIENT_ID": client_id}
    run = subprocess.run([sys.executable, "-m", "tskit", "list", ACCOUNT], env=env, capture_output=True, text=True)
    return run.stderr


@pytest.mark.parametrize(
    ("spelling", "same"),
    [
        ("https://ThingSpace.Verizon.com", "https://thingspace.verizon.com"),
        ("https://thingspace.verizon.com:443/", "https://thingspace.verizon.com"),
        ("https://thingspace.verizon.com./", "https://thingspace.verizon.com"),
        ("http://LOCALHOST:9100", "http://127.0.0.1:9100"),
        ("http://[::1]:9100", "http://127.0.0.1:9100"),
    ],
)
def test_every_spelling_of_a_server_is_one_server(spelling: str, same: str) -> None:
    assert guard.server(spelling) == guard.server(same)
    assert guard.server("https://thingspace.verizon.com") != guard.server("https://other.example.com")
    assert guard.server("http://127.0.0.1:9100") != guard.server("http://127.0.0.1:9101")


@pytest.mark.server
def test_three_spellings_of_one_server_share_one_count(tmp_path: Path) -> None:
    sim = Simulator(UNKNOWN)
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path)}
        port = server.base_url.rsplit(":", 1)[1]
        for url in [f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://LOCALHOST:{port}/"] * 2:
            run_list(env, url)
        assert sim.count("login") == 3 and not sim.is_locked(DEMO_USERNAME)


@pytest.mark.server
def test_20_processes_with_3_application_keys_send_at_most_3_logins(tmp_path: Path) -> None:
    sim = Simulator(UNKNOWN)
    keys = [DEMO_CLIENT_ID, "second-app", "third-app"]
    for key in keys[1:]:
        sim.add_client(key, DEMO_CLIENT_SECRET)
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path), "THINGSPACE_PASSWORD": WRONG}
        command = [sys.executable, "-m", "tskit", "list", ACCOUNT]
        procs = [
            subprocess.Popen(command, env={**env, "THINGSPACE_CLIENT_ID": keys[i % 3]}, stderr=subprocess.PIPE)
            for i in range(20)
        ]
        for proc in procs:
            proc.communicate(timeout=120)
        assert sim.count("login") == 3 and not sim.is_locked(DEMO_USERNAME)


def _answering_login(sim: Simulator, failure: Exception | None = None) -> httpx2.MockTransport:
    """The simulator, except that the login raises ``failure`` (below HTTP) when one is given."""
    inner = sim.transport()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if failure is not None and request.url.path.endswith("/session/login"):
            raise failure
        response: httpx2.Response = await inner.handle_async_request(request)
        return response

    return httpx2.MockTransport(handler)


@pytest.mark.parametrize(
    ("failure", "counted"),
    [
        (httpx2.ConnectError("connection refused"), False),  # it never left: taken back
        (httpx2.ReadTimeout("no answer"), True),  # it may have been judged: it counts
        (httpx2.RemoteProtocolError("server disconnected without sending a response"), True),
    ],
)
async def test_a_login_lost_on_the_way_counts_and_one_never_sent_does_not(
    sim: Simulator, clock: FakeClock, failure: Exception, counted: bool
) -> None:
    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, WRONG)
    async with make_client(sim, clock, credentials=wrong, transport=_answering_login(sim, failure)) as client:
        with pytest.raises(tskit.TransportError):
            await client.list_callbacks(ACCOUNT)
    entry = guard.failures(IN_PROCESS_URL, wrong)
    assert (entry is not None and entry["count"] == 1) is counted


async def test_renewing_only_the_token_clears_neither_the_count_nor_a_refusal(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        assert len(await client.list_callbacks(ACCOUNT)) == 2  # logged in: a session for 20 minutes
        # meanwhile another run failed a login of the same user with another password
        other = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, WRONG)
        guard.reserve(IN_PROCESS_URL, other)[0]
        guard.settle_login(IN_PROCESS_URL, other, "failed", 401, "x")
        guard.remember(IN_PROCESS_URL, other, 401, "x")
        for _ in range(8):  # used every 10 minutes for 80 minutes: the token ends, the session does not
            clock.advance(600)
            sim.advance(600)
            assert len(await client.list_callbacks(ACCOUNT)) == 2
        assert client.auth.token_requests >= 2 and client.auth.logins == 1  # a new token, no login
    assert guard.failures(IN_PROCESS_URL, RIGHT) is not None  # no login was sent: nothing proven
    assert guard.refused_before(IN_PROCESS_URL, other) is not None


@pytest.mark.server
def test_a_count_that_cannot_be_kept_sends_no_login(tmp_path: Path) -> None:
    sim = Simulator(UNKNOWN)
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path)}
        (tmp_path / guard.FAILURES_FILE).mkdir()  # a folder where the record should be
        err = run_list(env, server.base_url)
        assert "cannot count the logins of user 'demo-user'" in err and "sends none" in err, err
        assert sim.count("login") == 0
        (tmp_path / guard.FAILURES_FILE).rmdir()
        (tmp_path / guard.FAILURES_FILE).write_text("{ damaged")
        err = run_list(env, server.base_url)
        assert "is damaged" in err and "tskit reset-login" in err, err
        assert sim.count("login") == 0
        reset = subprocess.run([sys.executable, "-m", "tskit", "reset-login"], env=env, capture_output=True, text=True)
        assert reset.returncode == 0 and "set the damaged record of failed logins aside" in reset.stderr
        assert (
            "CarrierService"
            in subprocess.run(
                [sys.executable, "-m", "tskit", "list", ACCOUNT], env=env, capture_output=True, text=True
            ).stdout
        )
        assert sim.count("login") == 1


@pytest.mark.server
def test_the_limit_is_not_remembered_in_the_process_so_a_reset_elsewhere_is_seen(tmp_path: Path) -> None:
    sim = Simulator(UNKNOWN)
    with sim.serve() as server:
        wrong = tskit.connect(
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            username=DEMO_USERNAME,
            password=WRONG,
            base_url=server.base_url,
        )
        messages = []
        for _ in range(4):
            with pytest.raises(tskit.AuthenticationError) as caught:
                wrong.list_callbacks(ACCOUNT)
            messages.append(str(caught.value))
            wrong.client.auth.session.cooldown = None  # no waiting out the 2 s cooldown in a test
        assert sim.count("login") == 3 and "Not sent: 3 logins of user 'demo-user' in a row" in messages[3]
        assert "Verizon support" in messages[3]
        assert guard.forget(server.base_url, RIGHT)  # `tskit reset-login`, from a terminal
        with pytest.raises(tskit.AuthenticationError, match="failed login 1 of the 3"):
            wrong.list_callbacks(ACCOUNT)
        assert sim.count("login") == 4 and not sim.is_locked(DEMO_USERNAME)


@pytest.mark.server
def test_a_config_folder_turned_read_only_still_counts_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from tskit import _fingerprint

    config = tmp_path / "config"
    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(config))
    sim = Simulator(UNKNOWN)
    with sim.serve() as server:
        wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, WRONG)
        for _ in range(2):  # two failed logins recorded in the config folder
            guard.reserve(server.base_url, wrong)[0]
        # then the folder can no longer be written (read-only mount, full disk): tskit falls back
        monkeypatch.setattr(_fingerprint, "_writable", lambda path: path != config)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
        (tmp_path / "tmp").mkdir()
        ts = tskit.connect(
            client_id=DEMO_CLIENT_ID,
            client_secret=DEMO_CLIENT_SECRET,
            username=DEMO_USERNAME,
            password=WRONG,
            base_url=server.base_url,
        )
        with pytest.raises(tskit.AuthenticationError, match="failed login 3 of the 3"):
            ts.list_callbacks(ACCOUNT)
        ts.client.auth.session.cooldown = None
        with pytest.raises(tskit.AuthenticationError, match="Not sent: 3 logins"):
            ts.list_callbacks(ACCOUNT)
        assert sim.count("login") == 1


def test_a_failure_answered_after_another_process_cleared_the_count_starts_a_new_one() -> None:
    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, WRONG)
    right = tskit.Credentials("another-app", DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD)
    url = "https://thingspace.example.com"
    assert guard.reserve(url, wrong)[0] == 1  # a wrong login leaves
    assert guard.reserve(url, right)[0] == 2  # meanwhile another key's right one
    guard.settle_login(url, right, "worked")  # works first: the count is cleared
    guard.settle_login(url, wrong, "failed", 401, "x")  # then the wrong one is refused
    entry = guard.failures(url, wrong)
    assert entry is not None and entry["count"] == 1 and entry["status_code"] == 401
    guard.settle_login(url, right, "worked")
    guard.settle_login(url, wrong, "failed")  # no answer to go by (a closing flow): nothing new
    guard.settle_login(url, wrong, "not judged")
    assert guard.failures(url, wrong) is None


@pytest.mark.server
def test_reset_login_needs_no_secret_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(tmp_path))
    sim = Simulator(UNKNOWN)
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path)}
        run_list(env, server.base_url)
        assert guard.failures(server.base_url, RIGHT) is not None
        for name in ("THINGSPACE_PASSWORD", "THINGSPACE_CLIENT_SECRET"):
            env.pop(name)
        reset = subprocess.run([sys.executable, "-m", "tskit", "reset-login"], env=env, capture_output=True, text=True)
        assert reset.returncode == 0 and "Forgot the refused or failed logins of demo-user" in reset.stdout
        assert guard.failures(server.base_url, RIGHT) is None


@pytest.mark.server
def test_lost_login_answers_of_secrets_that_worked_before_do_not_stop_cron(tmp_path: Path) -> None:
    # A slow ThingSpace: logins time out. Secrets that logged in before are not counted for it.
    from tests.test_sessions import SlowLogins

    sim = SlowLogins()
    with sim.serve() as server:
        env = {**os.environ, **server.env(), "TSKIT_CONFIG_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "tskit", "list", ACCOUNT]
        assert subprocess.run(command, env=env, capture_output=True, text=True).returncode == 0
        sim.login_delay = 3.0
        for _ in range(4):
            slow = subprocess.run([*command, "--timeout", "1"], env=env, capture_output=True, text=True)
            assert slow.returncode == 1 and "logged in before, so it is not counted" in slow.stderr, slow.stderr
        sim.login_delay = 0.0
        assert subprocess.run(command, env=env, capture_output=True, text=True).returncode == 0
        # New secrets never seen to work: their lost answers count, as a wrong password's would
        env["THINGSPACE_PASSWORD"] = WRONG
        sim.login_delay = 3.0
        texts = [subprocess.run([*command, "--timeout", "1"], env=env, capture_output=True, text=True).stderr]
        assert "counts as failed login 1 of the 3" in texts[0], texts
