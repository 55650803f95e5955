"""Login safety at its edges: a forked child, many identities, plain httpx2 clients, reset(), the event loop."""

from __future__ import annotations

import asyncio
import os
import threading

import httpx2
import pytest

import tskit
from tests.conftest import IN_PROCESS_URL, FakeClock
from tests.test_sessions import RawLoginServer, SlowLogins, _in_a_forked_child
from tskit._errors import Reason
from tskit.auth import coordinator, guard, protocol
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME, Simulator

pytestmark = pytest.mark.anyio
ACCOUNT = "0000123456-00001"
CALLBACKS = f"/api/m2m/v1/callbacks/{ACCOUNT}"
WRONG = "wrong-pw-123"
RIGHT = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD)
WRONG_CREDENTIALS = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, WRONG)
#: Longest wait for a forked child: a safety net far beyond its call's timeout, never a measure.
CHILD_BOUND = 90.0


@pytest.mark.server
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_a_thread_records_a_login_completes_its_call() -> None:
    sim = Simulator()
    with sim.serve() as server:
        holding, release = threading.Event(), threading.Event()

        def record() -> None:  # a login being recorded: the record's process-wide lock is held
            with guard._lock:
                holding.set()
                release.wait()

        def child() -> None:  # one call, with its own timeout
            with tskit.connect(
                client_id=DEMO_CLIENT_ID,
                client_secret=DEMO_CLIENT_SECRET,
                username=DEMO_USERNAME,
                password=DEMO_PASSWORD,
                base_url=server.base_url,
                timeout=20,
            ) as ts:
                assert len(ts.list_callbacks(ACCOUNT)) == 2

        recorder = threading.Thread(target=record)
        recorder.start()
        holding.wait()
        try:
            assert _in_a_forked_child(child, CHILD_BOUND) == 0
        finally:
            release.set()
            recorder.join()
        assert sim.count("login") == 1


async def test_a_refused_identity_stays_refused_after_many_other_identities(sim: Simulator, clock: FakeClock) -> None:
    def auth(credentials: tskit.Credentials) -> tskit.ThingSpaceAuth:
        return tskit.ThingSpaceAuth(credentials, base_url=IN_PROCESS_URL, clock=clock, remember_refusals=False)

    async with tskit.ThingSpaceClient(auth=auth(WRONG_CREDENTIALS), transport=sim.transport()) as wrong:
        with pytest.raises(tskit.AuthenticationError):
            await wrong.list_callbacks(ACCOUNT)
    assert sim.count("login") == 1
    for i in range(100):  # other identities of the process, each with a session of its own
        other = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, f"user-{i}", "pw")
        auth(other).bind_realm(sim.transport())
        _ = auth(other).logins
    async with tskit.ThingSpaceClient(auth=auth(WRONG_CREDENTIALS), transport=sim.transport()) as again:
        with pytest.raises(tskit.AuthenticationError) as refused:
            await again.list_callbacks(ACCOUNT)
    assert sim.count("login") == 1, "the same wrong password was sent again"
    assert refused.value.reason == Reason.LOGIN_REFUSED


def _login_refused_until_back(sim: Simulator, back: list[bool]) -> httpx2.MockTransport:
    """The simulator, except that the login cannot connect until ``back[0]``."""
    inner = sim.transport()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if not back[0] and request.url.path.endswith("/session/login"):
            raise httpx2.ConnectError("connection refused")
        response: httpx2.Response = await inner.handle_async_request(request)
        return response

    return httpx2.MockTransport(handler)


@pytest.mark.server
async def test_logins_that_cannot_connect_never_count_on_a_plain_httpx2_client() -> None:
    sim, clock = Simulator(), FakeClock()
    with sim.serve() as running:
        url = running.base_url
        port = int(url.rsplit(":", 1)[1])
        auth = tskit.ThingSpaceAuth(RIGHT, base_url=url, clock=clock)
        async with httpx2.AsyncClient(base_url=url, auth=auth) as http:
            assert (await http.get(CALLBACKS)).status_code == 200  # a token for an hour, a session
    clock.advance(1500)  # the session idled out; the token is still good: the next call logs in
    guard.clear_failures(url, RIGHT)  # `tskit reset-login`: nothing on record says these secrets worked
    async with httpx2.AsyncClient(base_url=url, auth=auth) as http:
        for _ in range(3):  # connection refused: the network is down
            with pytest.raises(tskit.TransportError) as caught:
                await http.get(CALLBACKS)
            assert caught.value.reason == Reason.NOT_REACHED and caught.value.path.endswith("/session/login")
            clock.advance(120)  # past any cooldown
        assert guard.failures(url, RIGHT) is None  # not one counted as a failed login
        with sim.serve(port=port):  # the network is back
            assert (await http.get(CALLBACKS)).status_code == 200
    assert sim.count("login") == 2 and auth.logins == 5


async def test_logins_that_cannot_connect_never_count_on_a_plain_httpx2_client_over_any_transport(
    sim: Simulator,
) -> None:
    clock, back = FakeClock(), [False]
    auth = tskit.ThingSpaceAuth(RIGHT, base_url=IN_PROCESS_URL, clock=clock)
    transport = _login_refused_until_back(sim, back)
    async with httpx2.AsyncClient(base_url=IN_PROCESS_URL, auth=auth, transport=transport) as http:
        for _ in range(3):
            with pytest.raises(tskit.TransportError) as caught:
                await http.get(CALLBACKS)
            assert caught.value.reason == Reason.NOT_REACHED and caught.value.path.endswith("/session/login")
            clock.advance(120)  # past any cooldown
        assert guard.failures(IN_PROCESS_URL, RIGHT) is None  # not one counted as a failed login
        back[0] = True
        assert (await http.get(CALLBACKS)).status_code == 200
    assert sim.count("login") == 1  # the three never reached it


async def test_reset_lifts_this_processs_own_refusal(sim: Simulator, clock: FakeClock) -> None:
    auth = tskit.ThingSpaceAuth(WRONG_CREDENTIALS, base_url=IN_PROCESS_URL, clock=clock)
    async with tskit.ThingSpaceClient(auth=auth, transport=sim.transport()) as client:
        with pytest.raises(tskit.AuthenticationError):
            await client.list_callbacks(ACCOUNT)
        assert sim.count("login") == 1
        sim.add_user(DEMO_USERNAME, WRONG, [ACCOUNT])  # the password was changed to the one tried: it is right now
        auth.reset()
        assert len(await client.list_callbacks(ACCOUNT)) == 2
    assert sim.count("login") == 2


async def test_the_lockout_record_is_never_touched_on_the_event_loop_thread(
    sim: Simulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: list[str] = []
    for name in ("reserve", "settle_login", "remember", "refused_before", "recorded", "throttled_until", "login_lock"):
        original = getattr(guard, name)

        def spy(*args: object, __original=original, __name=name, **kwargs: object) -> object:
            try:
                asyncio.get_running_loop()
                on_loop.append(__name)
            except RuntimeError:
                pass
            return __original(*args, **kwargs)

        monkeypatch.setattr(guard, name, spy)
    back = [False]
    auth = tskit.ThingSpaceAuth(RIGHT, base_url=IN_PROCESS_URL, clock=clock)
    async with tskit.ThingSpaceClient(auth=auth, transport=_login_refused_until_back(sim, back)) as client:
        with pytest.raises(tskit.TransportError):
            await client.list_callbacks(ACCOUNT)
        clock.advance(120)
        back[0] = True
        assert len(await client.list_callbacks(ACCOUNT)) == 2
    assert on_loop == []
    assert coordinator is not None


@pytest.mark.server
def test_a_blocking_httpx2_client_reads_login_answers_with_the_same_cap() -> None:
    size = 5 * protocol.MAX_LOGIN_ANSWER
    server = RawLoginServer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (size, b"x" * size))
    try:
        auth = tskit.ThingSpaceAuth(RIGHT, base_url=server.url)
        with httpx2.Client(base_url=server.url, auth=auth) as http, pytest.raises(tskit.AuthenticationError) as caught:
            http.get(CALLBACKS)
        assert caught.value.reason == Reason.UNEXPECTED_ANSWER and "larger than 1 MB" in str(caught.value)
        assert server.counts["login"] == 1
    finally:
        server.close()


@pytest.mark.server
def test_a_blocking_httpx2_client_gives_a_login_no_longer_than_the_flows_timeout() -> None:
    sim = SlowLogins(login_delay=3.0)  # longer than the flow's timeout: the login's own timeout ends it
    with sim.serve() as running:
        auth = tskit.ThingSpaceAuth(RIGHT, base_url=running.base_url, timeout=0.5)
        with (
            httpx2.Client(base_url=running.base_url, auth=auth, timeout=60) as http,
            pytest.raises(tskit.RequestTimeout) as caught,
        ):
            http.get(CALLBACKS)
    assert caught.value.reason == Reason.TIMEOUT and caught.value.path.endswith("/session/login")
    assert sim.count("login") == 1
