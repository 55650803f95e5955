"""connect(): which backend, credentials from the environment, blocking calls, a light import."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tskit
from tskit._runtime import runtime
from tskit.simulator import Simulator

ACCOUNT = "0000123456-00001"
CREDENTIALS = {
    "client_id": "app-key",
    "client_secret": "app-secret-123",
    "username": "uws-user",
    "password": "uws-pass-123",
}
ENV = {
    "THINGSPACE_CLIENT_ID": "app-key",
    "THINGSPACE_CLIENT_SECRET": "app-secret-123",
    "THINGSPACE_USERNAME": "uws-user",
    "THINGSPACE_PASSWORD": "uws-pass-123",
}


def connect_real(base_url: str) -> tskit.ThingSpace:
    return tskit.connect(
        client_id="app-key",
        client_secret="app-secret-123",
        username="uws-user",
        password="uws-pass-123",
        base_url=base_url,
    )


def test_no_credentials_means_the_simulator() -> None:
    ts = tskit.connect()
    assert ts.is_simulator
    assert repr(ts) == "<ThingSpace: embedded simulator, 3 accounts>"
    assert ts.list_callbacks(ACCOUNT)["service_name"].tolist() == ["CarrierService", "DeviceUsage"]


def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    ts = tskit.connect()
    assert not ts.is_simulator
    assert repr(ts) == "<ThingSpace: https://thingspace.verizon.com as 'uws-user'>"
    assert "app-secret-123" not in repr(ts.client.auth._credentials)
    monkeypatch.setenv("THINGSPACE_BASE_URL", "https://staging.example.com/")
    assert tskit.connect().client.base_url == "https://staging.example.com"


def test_incomplete_environment_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGSPACE_CLIENT_ID", "app-key")
    monkeypatch.setenv("THINGSPACE_PASSWORD", "pw")
    with pytest.raises(tskit.ConfigurationError) as caught:
        tskit.connect()
    assert (caught.value.field, caught.value.reason) == ("credentials", tskit.Reason.MISSING_CREDENTIALS)
    assert caught.value.problem.startswith("THINGSPACE_CLIENT_SECRET, THINGSPACE_USERNAME not set")


def test_incomplete_arguments_name_the_field() -> None:
    with pytest.raises(tskit.ConfigurationError) as caught:
        tskit.connect(client_id="a", username="u", password="p")
    assert (caught.value.field, caught.value.reason) == ("client_secret", tskit.Reason.MISSING_CREDENTIALS)
    assert caught.value.remedy == tskit.Remedy("set-variable", option="THINGSPACE_CLIENT_SECRET")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://thingspace.example.com", "clear text"),
        ("https://thingspace.verizon.com/api", "ends in /api"),
        ("ftp://x", "not an http"),
        ("https://u:p@thingspace.verizon.com", "must not carry"),
    ],
)
def test_bad_base_url(url: str, words: str) -> None:
    with pytest.raises(tskit.ConfigurationError) as caught:
        connect_real(url)
    assert (caught.value.field, caught.value.reason) == ("base_url", tskit.Reason.INVALID_VALUE)
    assert words in caught.value.problem and ":p@" not in str(caught.value)


def test_http_allowed_on_loopback_only() -> None:
    assert connect_real("http://127.0.0.1:9999").client.base_url == "http://127.0.0.1:9999"


def test_simulator_false_requires_credentials() -> None:
    with pytest.raises(tskit.ConfigurationError) as caught:
        tskit.connect(simulator=False)
    assert (caught.value.field, caught.value.reason) == ("credentials", tskit.Reason.MISSING_CREDENTIALS)


def test_given_simulator_is_used() -> None:
    sim = Simulator(demo=False)
    sim.add_client("c", "s")
    ts = tskit.connect(simulator=sim)
    assert ts.simulator is sim


def test_blocking_call_outside_a_loop_does_not_patch_asyncio() -> None:
    before = asyncio.run
    tskit.connect().list_callbacks(ACCOUNT)
    assert asyncio.run is before


def test_blocking_call_inside_a_running_loop_works_like_a_notebook_cell() -> None:
    ts = tskit.connect()

    async def cell() -> list[str]:
        loop = asyncio.get_running_loop()
        assert not runtime.is_patched(loop)
        services: list[str] = ts.list_callbacks(ACCOUNT)["service_name"].tolist()  # no await, as in a cell
        assert runtime.is_patched(loop)
        frame = await ts.alist_callbacks(ACCOUNT)  # and the async twin on the same loop
        assert frame["service_name"].tolist() == services
        return services

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(cell()) == ["CarrierService", "DeviceUsage"]
    finally:
        loop.close()


def test_unpatchable_loop_gets_a_clear_error() -> None:
    class ForeignLoop(asyncio.AbstractEventLoop):  # stands for uvloop: not an asyncio.BaseEventLoop
        pass

    with pytest.raises(RuntimeError, match=r"await ts\.alist_callbacks"):
        runtime._patch(ForeignLoop())  # type: ignore[abstract]


def test_import_is_light() -> None:
    code = (
        "import sys, tskit; heavy = [m for m in ('ipywidgets', 'uvicorn', 'pandas', 'nest_asyncio2', 'aiohttp', "
        "'tqdm', 'tskit.simulator', 'tskit.audit', 'tskit.state') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_connect_to_simulator_does_not_import_server_parts() -> None:
    code = "import sys, tskit; tskit.connect().list_callbacks('0000123456-00001'); print('uvicorn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_connections_without_credentials_share_one_simulator() -> None:
    first, second = tskit.connect(), tskit.connect()
    assert first.simulator is not None and first.simulator is second.simulator
    assert tskit.connect(simulator=True).simulator is not first.simulator  # asked for a fresh one


def test_a_base_url_without_credentials_is_a_mistake_not_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGSPACE_BASE_URL", "http://127.0.0.1:9100")
    with pytest.raises(tskit.ConfigurationError) as caught:
        tskit.connect()
    assert (caught.value.field, caught.value.reason) == ("credentials", tskit.Reason.MISSING_CREDENTIALS)
    assert caught.value.problem.startswith("THINGSPACE_BASE_URL is set")  # names what was set
    monkeypatch.delenv("THINGSPACE_BASE_URL")
    with pytest.raises(tskit.ConfigurationError) as caught:
        tskit.connect(base_url="http://127.0.0.1:9100")
    assert caught.value.field == "credentials" and caught.value.problem.startswith("base_url is set")


def test_could_not_connect_names_the_token_request(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(tmp_path))
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ts = tskit.connect(
        client_id="key",
        client_secret="secret-1",
        username="user",
        password="pw-1",
        base_url=f"http://127.0.0.1:{port}",
        retry=tskit.NO_RETRY,
    )
    with pytest.raises(tskit.TransportError) as failure:
        ts.list_callbacks("0000123456-00001")
    ts.close()
    assert "POST /api/ts/v1/oauth2/token: could not connect" in str(failure.value)  # the request that failed


def test_an_embedded_simulators_refusals_stay_in_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every in-process simulator has the same address: its failed logins never reach the records on disk."""
    from tskit.simulator import Fault

    monkeypatch.setenv("TSKIT_CONFIG_DIR", str(tmp_path))
    for _ in range(3):
        broken = Simulator()
        broken.faults.scripted.append(Fault(status=400, operations=("login",)))
        with tskit.connect(simulator=broken) as ts, pytest.raises(tskit.AuthenticationError):
            ts.list_callbacks(ACCOUNT)
    assert not list(tmp_path.rglob("refused-logins.json")) or "demo-user" not in (
        next(tmp_path.rglob("refused-logins.json")).read_text()
    )
    with tskit.connect(simulator=Simulator()) as ts:  # another simulator, this process or the next
        assert len(ts.list_callbacks(ACCOUNT)) == 2
    done = subprocess.run(
        [sys.executable, "-c", f"import tskit; print(len(tskit.connect().list_callbacks({ACCOUNT!r})))"],
        capture_output=True,
        text=True,
        env={**os.environ, "TSKIT_CONFIG_DIR": str(tmp_path)},
        timeout=120,
        check=False,
    )
    assert done.stdout.strip() == "2", done.stderr[-2000:]
