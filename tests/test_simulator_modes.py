"""Sandbox mode, the knobs for what Verizon does not document, the stale password, and the simulator's
independence from the client."""

from __future__ import annotations

import ast
import base64
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx2
import pytest

import tskit
from tests.conftest import eventually
from tskit.listener import Listener
from tskit.simulator import Simulator, SimulatorConfig, simulator_process

pytestmark = pytest.mark.server


def bearer(http: httpx2.Client, client_id: str = "any-key", secret: str = "any-secret") -> str:
    answer = http.post("/ts/v1/oauth2/token", auth=(client_id, secret), data={"grant_type": "client_credentials"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.fixture
def sandbox() -> Iterator[httpx2.Client]:
    with (
        Simulator(sandbox=True, demo=False).serve() as server,
        httpx2.Client(base_url=server.base_url + "/api") as http,
    ):
        yield http


def test_sandbox_takes_any_credentials_and_any_session_token(sandbox: httpx2.Client) -> None:
    token = bearer(sandbox)
    login = sandbox.post(
        "/m2m/v1/session/login", headers={"Authorization": f"Bearer {token}"}, json={"username": "a", "password": "b"}
    )
    assert login.status_code == 200 and login.json()["sessionToken"]
    auth = {"Authorization": f"Bearer {token}", "VZ-M2M-Token": "use-any-value"}  # never logged in with it
    listed = sandbox.get("/m2m/v1/callbacks/TestAccount-1", headers=auth)
    assert listed.status_code == 200 and {c["serviceName"] for c in listed.json()} == {"CarrierService", "DeviceUsage"}
    # the seed's register example, on TestAccount-2 as Verizon's page says
    body = {"name": "CarrierService", "url": "http://10.120.102.183:50559/CallbackListener/CarrierServiceMessages.asmx"}
    registered = sandbox.post("/m2m/v1/callbacks/TestAccount-2", headers=auth, json=body)
    assert registered.json() == {"accountName": "TestAccount-2", "serviceName": "CarrierService"}
    refused = sandbox.post("/m2m/v1/callbacks/TestAccount-1", headers=auth, json=body)
    assert refused.status_code == 400 and refused.json()["errorCode"].endswith("REQUEST_FAILED.SandboxAccount")
    # the seed's list and deregister examples
    example = sandbox.get("/m2m/v1/callbacks/0252012345-00001", headers=auth).json()
    assert example[1] == {
        "accountName": "0252012345-00001",
        "serviceName": "DeviceUsage",
        "url": "http://10.120.102.147:50569/CallbackListener/Usage.asmx",
        "username": "zaffod",
        "password": "drowssap",
    }
    gone = sandbox.delete("/m2m/v1/callbacks/1223334444-00001/name/CarrierService", headers=auth)
    assert gone.json() == {"accountName": "1223334444-00001", "serviceName": "CarrierService"}


def test_sandbox_tokens_never_expire() -> None:
    sim = Simulator(sandbox=True)
    transport = sim.transport()
    with httpx2.Client(transport=transport, base_url="https://sandbox.invalid/api") as http:
        token = bearer(http)
        sim.advance(10 * 3600)
        auth = {"Authorization": f"Bearer {token}", "VZ-M2M-Token": "x"}
        assert http.get("/m2m/v1/callbacks/TestAccount-1", headers=auth).status_code == 200
        assert bearer(http) == token  # the console's test token does not expire
    assert "sandbox" in repr(sim)


def test_tskit_simulator_sandbox_and_knobs_on_the_command_line() -> None:
    options = ("--sandbox", "--session-expired-status", "401", "--login-failure-status", "401")
    with simulator_process(*options) as env, httpx2.Client(base_url=env["THINGSPACE_BASE_URL"] + "/api") as http:
        token = bearer(http, "who", "ever")
        auth = {"Authorization": f"Bearer {token}", "VZ-M2M-Token": "anything"}
        assert http.get("/m2m/v1/callbacks/TestAccount-1", headers=auth).status_code == 200
        missing = http.get("/m2m/v1/callbacks/TestAccount-1", headers={"Authorization": f"Bearer {token}"})
        assert (missing.status_code, missing.json()["errorCode"]) == (
            401,
            "UnifiedWebService.REQUEST_FAILED.SessionToken.Format",
        )


def test_expired_session_and_refused_login_status_and_code_are_knobs(sim: Simulator) -> None:
    sim.config.session_expired_status, sim.config.session_expired_code = 401, "REQUEST_FAILED.SessionToken.Gone"
    sim.config.login_failure_status, sim.config.login_failure_code = 401, "REQUEST_FAILED.Authentication.Failed"
    with httpx2.Client(transport=sim.transport(), base_url="https://sim.invalid/api") as http:
        token = bearer(http, tskit.simulator.DEMO_CLIENT_ID, tskit.simulator.DEMO_CLIENT_SECRET)
        head = {"Authorization": f"Bearer {token}"}
        refused = http.post("/m2m/v1/session/login", headers=head, json={"username": "demo-user", "password": "no"})
        assert (refused.status_code, refused.json()["errorCode"]) == (
            401,
            "UnifiedWebService.REQUEST_FAILED.Authentication.Failed",
        )
        good = {"username": "demo-user", "password": "demo-password"}
        session = http.post("/m2m/v1/session/login", headers=head, json=good).json()["sessionToken"]
        sim.advance(1201)
        expired = http.get("/m2m/v1/callbacks/0000123456-00001", headers={**head, "VZ-M2M-Token": session})
        assert (expired.status_code, expired.json()["errorCode"]) == (
            401,
            "UnifiedWebService.REQUEST_FAILED.SessionToken.Gone",
        )


def test_the_same_problem_has_the_same_code_on_every_route(sim: Simulator) -> None:
    with httpx2.Client(transport=sim.transport(), base_url="https://sim.invalid/api") as http:
        token = bearer(http, tskit.simulator.DEMO_CLIENT_ID, tskit.simulator.DEMO_CLIENT_SECRET)
        head = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        login = http.post("/m2m/v1/session/login", headers=head, content=b"[1]")
        good = {"username": "demo-user", "password": "demo-password"}
        session = http.post("/m2m/v1/session/login", headers=head, json=good).json()["sessionToken"]
        register = http.post(
            "/m2m/v1/callbacks/0000123456-00003", headers={**head, "VZ-M2M-Token": session}, content=b"[1]"
        )
    assert (
        login.json()["errorCode"] == register.json()["errorCode"] == "UnifiedWebService.INPUT_INVALID.RequestUndefined"
    )


def test_stale_password_window_after_re_registration(sim: Simulator) -> None:
    sim.config.stale_password_window = 600
    sim.config.delivery_time_scale = 0.01
    account = "0000123456-00003"
    with Listener(username="tsuser", password="new-pw-2") as listener:
        ts = tskit.connect(simulator=sim)
        url = listener.url_for("CarrierService")
        ts.register_callback(account, "CarrierService", url, username="tsuser", password="old-pw-1")
        ts.register_callback(account, "CarrierService", url, username="tsuser", password="new-pw-2")
        ts.close()
        stale = sim.trigger(account, "CarrierService").wait()
        assert [a.status_code for a in stale.attempts] == [401, 401]  # ThingSpace still sends the old one
        sim.advance(601)
        assert sim.trigger(account, "CarrierService").wait().delivered
        assert listener.count() == 1
    with Listener(username="tsuser", password="new-pw-2", previous_password="old-pw-1") as graceful:
        sim.register(account, "CarrierService", graceful.url_for("CarrierService"), "tsuser", "old-pw-1")
        sim.register(account, "CarrierService", graceful.url_for("CarrierService"), "tsuser", "new-pw-2")
        assert sim.trigger(account, "CarrierService").wait().delivered  # the listener's grace covers it
    sim.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_pending_deliveries_never_hold_up_exit() -> None:
    script = f"""
from tskit.simulator import Simulator
sim = Simulator()
sim.config.enforce_listener_ports = False
sim.register("0000123456-00003", "CarrierService", "http://127.0.0.1:{free_port()}/gone")
sim.trigger("0000123456-00003", "CarrierService", policy="documented")  # next attempt in 5 minutes
"""
    # the next attempt is 5 minutes away: a process that waited for it would outlive the timeout
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_close_cuts_a_resend_wait_short(sim: Simulator) -> None:
    sim.config.enforce_listener_ports = False
    sim.register("0000123456-00003", "CarrierService", f"http://127.0.0.1:{free_port()}/gone")
    delivery = sim.trigger("0000123456-00003", "CarrierService", policy="documented")
    deadline = time.monotonic() + 30  # a bound on a hang
    while not delivery.attempts:  # the first attempt failed: the next one is 5 minutes away
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sim.close()  # joins the delivery threads for at most 10 s: a wait of 5 minutes is cut short
    assert delivery.wait(30).state == "given up" and len(delivery.attempts) == 1


CLIENT_MODULES = {"tskit"} | {f"tskit.{p.stem}" for p in Path(tskit.__file__).parent.glob("_*.py")}
ALLOWED = {"tskit._serving", "tskit._version"}  # shared serving plumbing, not the client


def test_the_simulator_never_imports_the_client() -> None:
    for path in Path(tskit.simulator.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            wrong = {n for n in names if n in CLIENT_MODULES and n not in ALLOWED}
            assert not wrong, f"{path.name} imports {wrong}"


def test_the_simulators_facts_agree_with_the_clients_today() -> None:
    """Two copies on purpose; they agree now, and a change to one shows here."""
    from tskit._models import ALLOWED_LISTENER_PORTS, SERVICE_CATALOGUE
    from tskit.simulator._facts import LISTENER_PORTS, SERVICES

    assert set(SERVICE_CATALOGUE) == set(SERVICES)
    assert set(ALLOWED_LISTENER_PORTS) == set(LISTENER_PORTS)


def test_config_defaults_are_the_command_lines() -> None:
    from tskit.cli import build_parser
    from tskit.cli._simulator import config_from

    args = build_parser().parse_args(["simulator"])
    assert config_from(args) == SimulatorConfig()


def test_hostile_bodies_get_thingspace_errors_not_tracebacks(sim: Simulator) -> None:
    with httpx2.Client(transport=sim.transport(), base_url="https://sim.invalid/api") as http:
        token = bearer(http, tskit.simulator.DEMO_CLIENT_ID, tskit.simulator.DEMO_CLIENT_SECRET)
        head = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        deep = http.post("/m2m/v1/session/login", headers=head, content=b"[" * 30_000 + b"]" * 30_000)
        surrogate = http.post(
            "/m2m/v1/session/login", headers=head, content=b'{"username": "demo-user", "password": "\\ud800"}'
        )
    assert deep.status_code == 400 and deep.json()["errorCode"].endswith("RequestUndefined")
    assert surrogate.status_code == 400 and surrogate.json()["errorCode"].endswith("Login.Failed")


HIDDEN_HOSTS = [
    ("http://3405803781:9001/", "documentation address"),
    ("http://0xcb.0.0x71.5:9001/", "documentation address"),
    ("http://[::ffff:203.0.113.5]:9001/", "documentation address"),
    ("http://10.120.102.147:50569/CallbackListener/Carrier.asmx", "private address"),
    ("http://0xa.0x78.102.147:50569/", "private address"),
    ("http://192.168.1.20:9001/", "private address"),
]


@pytest.mark.parametrize(("url", "kind"), HIDDEN_HOSTS)
def test_no_callback_goes_to_documentation_or_private_hosts_in_any_form(url: str, kind: str) -> None:
    sim = Simulator(demo=False)
    sim.register("0000123456-00003", "CarrierService", url, "tsuser", "pw")
    delivery = sim.trigger("0000123456-00003", "CarrierService").wait(5)
    [attempt] = delivery.attempts
    assert attempt.status_code is None and attempt.outcome.startswith("not sent") and kind in attempt.outcome
    sim.close()


def test_the_seed_private_lan_is_never_contacted() -> None:
    sim = Simulator(sandbox=True)  # the sandbox holds the seed's examples, on 10.120.102.147
    delivery = sim.trigger("0252012345-00001", "CarrierService").wait(5)
    assert delivery.attempts[0].outcome.startswith("not sent: 10.120.102.147 is a private address")
    sim.close()


@pytest.mark.parametrize(
    "url", ["http://203.000.113.005:9001/", "http://\udcff.example.com:9001/", "http://a..b:9001/"]
)
def test_urls_no_client_can_use_are_refused_at_register_and_never_kill_delivery(url: str) -> None:
    sim = Simulator(sandbox=True, demo=False)
    with httpx2.Client(transport=sim.transport(), base_url="https://sim.invalid/api") as http:
        headers = {"Authorization": f"Bearer {bearer(http)}"}
        login = http.post("/m2m/v1/session/login", headers=headers, json={"username": "tsuser", "password": "pw"})
        headers["VZ-M2M-Token"] = login.json().get("sessionToken", "")
        headers["Content-Type"] = "application/json"
        body = json.dumps({"name": "CarrierService", "url": url})  # \udcff escaped, as a hostile client sends it
        answer = http.post("/m2m/v1/callbacks/TestAccount-2", headers=headers, content=body)
        assert answer.status_code == 400 and answer.json()["errorMessage"] == "url is not a valid URL."
    with Listener() as listener:  # registered directly: the workers record the failure and go on
        for _ in range(10):  # more than the delivery workers
            sim.register("0000123456-00003", "CarrierService", url, "tsuser", "pw")
            bad = sim.trigger("0000123456-00003", "CarrierService").wait(5)
            assert bad.state == "given up" and bad.attempts[0].outcome.startswith("not sent")
        sim.register("0000123456-00003", "CarrierService", listener.url_for("CarrierService"))
        assert sim.trigger("0000123456-00003", "CarrierService").wait(10).delivered
    sim.close()


def test_hostile_auth_headers_and_websockets_get_clean_answers() -> None:
    sim = Simulator()
    with sim.serve() as server, httpx2.Client(base_url=server.base_url + "/api") as http:
        for raw in (b"Basic \xff\xfe\xfd", b"Basic !!!not-base64", b"Basic " + base64.b64encode(b"\xff\xfe:\xff")):
            answer = http.post(
                "/ts/v1/oauth2/token", headers={b"Authorization": raw}, data={"grant_type": "client_credentials"}
            )
            assert answer.status_code == 401 and answer.json()["error"] == "invalid_client", raw
        basic = "Basic " + base64.b64encode(b"tskit-demo-client:tskit-demo-secret").decode()
        for token in ("a\r\nSet-Cookie: x=1", "\udc80", "tok\x00en"):
            form = "token=" + quote(token.encode("utf-8", "surrogatepass"))
            answer = http.post(
                "/ts/v1/oauth2/revoke",
                headers={"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"},
                content=form,
            )
            assert answer.status_code == 400 and answer.json()["error"] == "invalid_request", token
            assert "revoked-token" not in answer.headers and "set-cookie" not in answer.headers
        upgrade = {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
        assert http.get("/m2m/v1/callbacks/0000123456-00001", headers=upgrade).status_code in (400, 401)


def test_sandbox_examples_are_read_only(sandbox: httpx2.Client) -> None:
    auth = {"Authorization": f"Bearer {bearer(sandbox)}", "VZ-M2M-Token": "any"}
    for _ in range(2):  # every user of the sandbox sees the examples
        gone = sandbox.delete("/m2m/v1/callbacks/1223334444-00001/name/CarrierService", headers=auth)
        assert gone.json() == {"accountName": "1223334444-00001", "serviceName": "CarrierService"}
    assert len(sandbox.get("/m2m/v1/callbacks/1223334444-00001", headers=auth).json()) == 1
    body = {"name": "CarrierService", "url": "http://127.0.0.1:9001/callbacks"}
    assert sandbox.post("/m2m/v1/callbacks/TestAccount-2", headers=auth, json=body).status_code == 200
    assert sandbox.delete("/m2m/v1/callbacks/TestAccount-2/name/CarrierService", headers=auth).status_code == 200
    assert sandbox.get("/m2m/v1/callbacks/TestAccount-2", headers=auth).content == b""


def test_the_served_simulator_triggers_deliveries_over_http() -> None:
    import asyncio

    from tskit.simulator._admin import trigger

    sim = Simulator(SimulatorConfig(delivery_policy="observed", stale_password_window=600))
    sim.config.delivery_time_scale = 0.01
    account = "0000123456-00003"
    basic = ("tskit-demo-client", "tskit-demo-secret")
    with Listener(username="tsuser", password="new-pw-2") as listener, sim.serve() as server:
        url = server.base_url + "/simulator/v1/trigger"
        sim.register(account, "CarrierService", listener.url_for("CarrierService"), "tsuser", "old-pw-1")
        sim.register(account, "CarrierService", listener.url_for("CarrierService"), "tsuser", "new-pw-2")
        body = {"accountName": account, "serviceName": "CarrierService", "wait": True}
        stale = httpx2.post(url, auth=basic, json=body, timeout=30)
        assert stale.status_code == 200 and stale.json()["state"] == "given up"
        assert [a["statusCode"] for a in stale.json()["attempts"]] == [401, 401]  # the window, from a shell
        sim.advance(601)
        sent = httpx2.post(url, auth=basic, json=body, timeout=30).json()
        assert sent["state"] == "delivered" and listener.count() == 1
        queued = httpx2.post(url, auth=basic, json={"accountName": account, "serviceName": "CarrierService"})
        assert queued.status_code == 202 and queued.json()["state"] in ("pending", "delivered")
        assert httpx2.post(url, json=body).status_code == 401
        assert httpx2.post(url, auth=("tskit-demo-client", "wrong"), json=body).status_code == 401
        assert httpx2.post(url, auth=basic, json={"accountName": account}).status_code == 400
        missing = httpx2.post(url, auth=basic, json={"accountName": account, "serviceName": "DeviceUsage"})
        assert missing.status_code == 404 and "no DeviceUsage listener" in missing.json()["error"]
        assert httpx2.get(url, auth=basic).status_code == 405
    loop = asyncio.new_event_loop()  # not asyncio.run: other tests may have patched it (nest-asyncio)
    try:
        far = loop.run_until_complete(trigger(sim, "POST", "192.0.2.1", {}, b"{}"))
    finally:
        loop.close()
    assert far.status == 403
    sim.close()


def test_register_refuses_credentials_that_are_not_unicode() -> None:
    sim = Simulator(sandbox=True, demo=False)
    with httpx2.Client(transport=sim.transport(), base_url="https://sim.invalid/api") as http:
        headers = {"Authorization": f"Bearer {bearer(http)}", "VZ-M2M-Token": "any", "Content-Type": "application/json"}
        for key in ("username", "password"):
            body = json.dumps({"name": "CarrierService", "url": "http://127.0.0.1:9001/x", key: "\ud800"})
            answer = http.post("/m2m/v1/callbacks/TestAccount-2", headers=headers, content=body)
            assert answer.status_code == 400 and answer.json()["errorMessage"].startswith(key), key
    assert sim.registrations("TestAccount-2") == []


def test_the_served_simulator_closes_slow_heads() -> None:
    from tskit.simulator import SimulatorServer

    with SimulatorServer(Simulator(), header_timeout=0.5).start() as server:
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.sendall(b"GET /api/m2m/v1/callbacks/x HTTP/1.1\r\nHost: x\r\n")  # never finished
        slow.settimeout(30)  # a bound on a hang: without a head deadline it would never close
        assert slow.recv(100) == b""  # closed after 0.5 s
        slow.close()


@pytest.mark.usefixtures("patient_gate")
def test_the_served_simulator_caps_connections() -> None:
    from tskit.simulator import SimulatorServer

    with SimulatorServer(Simulator(), max_connections=2).start() as server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        for sock in held:  # accepted in the order they came, before the third below
            sock.sendall(b"GET /api/m2m/v1/callbacks/x HTTP/1.1\r\nHost: x\r\n")
        assert httpx2.post(server.base_url + "/api/ts/v1/oauth2/token").status_code == 503  # the third
        for sock in held:
            sock.close()
        # served again once the server has seen them go
        eventually(lambda: httpx2.post(server.base_url + "/api/ts/v1/oauth2/token").status_code == 401)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--port", "99999", "99999 is not a port; give 0 to 65535"),
        ("--port", "-5", "-5 is not a port; give 0 to 65535"),
        ("--latency", "-1", "-1 is not a number of seconds; give 0 or more"),
        ("--retry-after", "nan", "nan is not a number of seconds"),
        ("--fleet", "-3", "-3 is not a number of accounts; give 0 or more"),
    ],
)
def test_simulator_options_out_of_range_are_usage_errors(
    option: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tskit.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["simulator", f"{option}={value}"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and f"argument {option}: {words}" in err and "Traceback" not in err


def test_listen_on_an_unknown_host_names_the_host_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tskit.cli import main

    assert main(["listen", "--host", "nosuch.invalid", "--no-auth", "--store", str(tmp_path / "m.db")]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on nosuch.invalid: " in err and "None" not in err


@pytest.mark.server
def test_the_fleet_file_lists_the_fleet_for_an_audit(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    from tskit.simulator import simulator_process

    names = tmp_path / "fleet.txt"
    with simulator_process("--fleet", "30", "--fleet-file", str(names), "--no-demo") as server_env:
        env = {**os.environ, **server_env, "TSKIT_CONFIG_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "tskit", "audit", "--accounts-file", str(names), "--no-progress"]
        audit = subprocess.run([*command, "--save", str(tmp_path / "a.json")], env=env, capture_output=True, text=True)
    assert names.read_text().splitlines() == [f"{7000000000 + i}-00001" for i in range(30)]
    assert audit.returncode in (0, 3), audit.stderr  # 3: findings at or above --fail-on
    snapshot = json.loads((tmp_path / "a.json").read_text())
    assert len(snapshot["accounts"]) == 30 and not snapshot["errors"]


def test_the_fleet_file_needs_a_fleet_and_a_writable_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tskit.cli import main

    assert main(["simulator", "--fleet-file", str(tmp_path / "f.txt")]) == 2
    assert "--fleet-file needs --fleet N" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    assert main(["simulator", "--fleet", "3", "--fleet-file", str(tmp_path / "a-file" / "f.txt"), "--port", "0"]) == 2
    assert "--fleet-file: cannot write" in capsys.readouterr().err and not (tmp_path / "f.txt").exists()
