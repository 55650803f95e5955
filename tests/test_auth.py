"""ThingSpace's two-step auth: reuse, expiry, re-login, one login for many calls, no retry of refusals."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

import tskit
from tests.conftest import IN_PROCESS_URL, FakeClock, make_client
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, Fault, Simulator

pytestmark = pytest.mark.anyio
ACCOUNT = "0000123456-00001"


class Recorder(httpx2.AsyncBaseTransport):
    """Passes requests to the simulator and keeps them, to look at the headers sent."""

    def __init__(self, sim: Simulator) -> None:
        self.inner = sim.transport()
        self.requests: list[httpx2.Request] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        response: httpx2.Response = await self.inner.handle_async_request(request)
        return response


async def test_every_call_carries_bearer_and_session_token(sim: Simulator, clock: FakeClock) -> None:
    recorder = Recorder(sim)
    async with make_client(sim, clock, transport=recorder) as client:
        await client.list_callbacks(ACCOUNT)
    token, login, call = recorder.requests
    assert token.url.path == "/api/ts/v1/oauth2/token"
    assert token.headers["Authorization"].startswith("Basic ")
    assert token.content == b"grant_type=client_credentials"
    assert login.url.path == "/api/m2m/v1/session/login"
    assert login.headers["Authorization"].startswith("Bearer ")
    assert call.headers["Authorization"] == login.headers["Authorization"]
    assert len(call.headers["VZ-M2M-Token"]) == 36
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["Accept"] == "application/json"


async def test_token_and_session_are_reused(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        for _ in range(10):
            await client.list_callbacks(ACCOUNT)
            clock.advance(60)
            sim.advance(60)
        assert (client.auth.token_requests, client.auth.logins) == (1, 1)
    assert (sim.count("token"), sim.count("login"), sim.count("list")) == (1, 1, 10)


async def test_session_expired_by_server_logs_in_again_once(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        await client.list_callbacks(ACCOUNT)
        sim.advance(1201)  # the server's idle timeout passes; the client's clock does not know
        callbacks = await client.list_callbacks(ACCOUNT)
        assert len(callbacks) == 2
        assert client.auth.logins == 2
    statuses = [(r.operation, r.status) for r in sim.requests]
    assert statuses[-3:] == [("list", 400), ("login", 200), ("list", 200)]


async def test_forced_session_expiry_is_survived(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        await client.list_callbacks(ACCOUNT)
        sim.expire_sessions()
        await client.register_callback("0000123456-00003", "CarrierService", "https://l.example.com/c")
    assert sim.count("register") == 2  # refused for the expired session, then sent once more
    assert [r["serviceName"] for r in sim.registrations("0000123456-00003")] == ["CarrierService"]


async def test_idle_session_is_renewed_before_use(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        await client.list_callbacks(ACCOUNT)
        clock.advance(1150)  # within the client's one-minute margin of the 20-minute timeout
        sim.advance(1150)
        await client.list_callbacks(ACCOUNT)
    assert [r.status for r in sim.requests if r.operation == "list"] == [200, 200]
    assert sim.count("login") == 2


async def test_token_is_fetched_again_after_an_hour(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        await client.list_callbacks(ACCOUNT)
        for _ in range(4):  # keep the session alive for an hour
            clock.advance(900)
            sim.advance(900)
            await client.list_callbacks(ACCOUNT)
        assert client.auth.token_requests == 2
    assert all(r.status == 200 for r in sim.requests)


async def test_revoked_token_401_fetches_new_token_and_retries_once(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        await client.list_callbacks(ACCOUNT)
        sim.revoke_tokens()
        assert len(await client.list_callbacks(ACCOUNT)) == 2
        # a refused bearer (900901) says nothing of the session: a new token, the same session
        assert (client.auth.token_requests, client.auth.logins) == (2, 1)


async def test_persistent_401_is_not_retried_in_a_loop(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        await client.list_callbacks(ACCOUNT)
        sim.faults.scripted.extend([Fault(status=401), Fault(status=401)])
        with pytest.raises(tskit.AuthenticationError) as caught:
            await client.list_callbacks(ACCOUNT)
        assert caught.value.status_code == 401
    assert sim.count("list") == 3  # the first call, then one try and one retry after a new login
    assert sim.count("login") == 2


async def test_concurrent_first_calls_log_in_once(sim: Simulator, clock: FakeClock) -> None:
    sim.faults.latency = 0.01  # so that the calls really overlap
    async with make_client(sim, clock) as client:
        results = await asyncio.gather(*(client.list_callbacks(ACCOUNT) for _ in range(25)))
    assert all(len(r) == 2 for r in results)
    assert (sim.count("token"), sim.count("login"), sim.count("list")) == (1, 1, 25)


async def test_concurrent_calls_after_expiry_log_in_once_more(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        await client.list_callbacks(ACCOUNT)
        sim.expire_sessions()
        sim.faults.latency = 0.01
        await asyncio.gather(*(client.list_callbacks(ACCOUNT) for _ in range(10)))
    assert sim.count("login") == 2


async def test_refused_login_is_never_retried(sim: Simulator, clock: FakeClock) -> None:
    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "not-the-password")
    async with make_client(sim, clock, credentials=wrong) as client:
        with pytest.raises(tskit.AuthenticationError) as caught:
            await client.list_callbacks(ACCOUNT)
        assert caught.value.status_code == 400
        assert caught.value.error_code == "UnifiedWebService.REQUEST_FAILED.Login.Failed"
        assert "does not try again" in str(caught.value)
        for _ in range(10):  # a loop over accounts must not lock the user
            with pytest.raises(tskit.AuthenticationError, match="Not sent"):
                await client.list_callbacks(ACCOUNT)
        results = await asyncio.gather(*(client.list_callbacks(ACCOUNT) for _ in range(10)), return_exceptions=True)
        assert all(isinstance(r, tskit.AuthenticationError) for r in results)
    assert sim.count("login") == 1
    assert not sim.is_locked(DEMO_USERNAME)


async def test_reset_with_fixed_credentials_logs_in(sim: Simulator, clock: FakeClock, demo_credentials) -> None:
    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "not-the-password")
    async with make_client(sim, clock, credentials=wrong) as client:
        with pytest.raises(tskit.AuthenticationError):
            await client.list_callbacks(ACCOUNT)
        client.auth.reset(demo_credentials)
        assert len(await client.list_callbacks(ACCOUNT)) == 2


async def test_refused_token_request_is_never_retried(sim: Simulator, clock: FakeClock) -> None:
    wrong = tskit.Credentials(DEMO_CLIENT_ID, "wrong-secret", DEMO_USERNAME, "whatever")
    async with make_client(sim, clock, credentials=wrong) as client:
        for _ in range(3):
            with pytest.raises(tskit.AuthenticationError) as caught:
                await client.list_callbacks(ACCOUNT)
    assert caught.value.error_code == "invalid_client"
    assert (sim.count("token"), sim.count("login")) == (1, 0)


async def test_login_5xx_is_not_retried_within_the_call_but_a_call_after_the_cooldown_logs_in(
    sim: Simulator, clock: FakeClock
) -> None:
    from tskit.auth import protocol

    sim.faults.scripted.append(Fault(status=503, operations=("login",)))
    async with make_client(sim, clock) as client:
        with pytest.raises(tskit.AuthenticationError) as caught:
            await client.list_callbacks(ACCOUNT)
        assert caught.value.status_code == 503
        assert "passing reason" in str(caught.value)
        assert sim.count("login") == 1
        with pytest.raises(tskit.AuthenticationError, match=r"Not sent.*cooldown"):  # at once, nothing sent
            await client.list_callbacks(ACCOUNT)
        assert sim.count("login") == 1
        clock.advance(protocol.COOLDOWN + 0.1)
        assert len(await client.list_callbacks(ACCOUNT)) == 2
        assert client.auth.refused is None  # a 503 is no refusal
    assert sim.count("login") == 2


async def test_malformed_token_answer_is_a_clear_error(sim: Simulator, clock: FakeClock) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, text="<html>maintenance</html>")

    async with make_client(sim, clock, transport=httpx2.MockTransport(handler)) as client:
        with pytest.raises(tskit.AuthenticationError, match="not a JSON object"):
            await client.list_callbacks(ACCOUNT)


def test_same_auth_works_with_a_blocking_httpx_client(sim: Simulator, clock: FakeClock, demo_credentials) -> None:
    auth = tskit.ThingSpaceAuth(demo_credentials, base_url=IN_PROCESS_URL, clock=clock)
    with httpx2.Client(base_url=IN_PROCESS_URL, auth=auth, transport=sim.transport()) as http:
        first = http.get(f"/api/m2m/v1/callbacks/{ACCOUNT}")
        sim.expire_sessions()
        second = http.get(f"/api/m2m/v1/callbacks/{ACCOUNT}")
    assert first.status_code == second.status_code == 200
    assert second.json()[0]["serviceName"] == "CarrierService"
    assert (auth.token_requests, auth.logins) == (1, 2)


async def test_logout_ends_the_session_and_the_next_call_logs_in(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock) as client:
        await client.logout()  # nothing to end yet: no request
        assert sim.count("logout") == 0
        await client.list_callbacks(ACCOUNT)
        await client.logout()
        assert [r.status for r in sim.requests if r.operation == "logout"] == [200]
        await client.list_callbacks(ACCOUNT)
    assert sim.count("login") == 2
    assert [r.status for r in sim.requests if r.operation == "list"] == [200, 200]


async def test_only_a_session_error_code_means_a_new_login(sim: Simulator, clock: FakeClock) -> None:
    sim.add_account("SessionToken-1", users=["demo-user"])
    async with make_client(sim, clock) as client:
        await client.list_callbacks(ACCOUNT)
        # answered CallbackNotRegistered: the message names "SessionToken", the code does not
        result = await client.deregister_callback("SessionToken-1", "CarrierService")
        assert result.outcome == "confirmed"  # a listing showed it holds: no callback
    assert sim.count("login") == 1 and sim.count("deregister") == 1


async def test_a_refusal_is_remembered_across_runs(sim: Simulator, clock: FakeClock, demo_credentials) -> None:
    import os
    import stat

    from tskit import _fingerprint
    from tskit.auth import coordinator, guard

    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "wrong-pw-123")
    async with make_client(sim, clock, credentials=wrong) as first_run:
        with pytest.raises(tskit.AuthenticationError, match="does not try again"):
            await first_run.list_callbacks(ACCOUNT)
    for _ in range(6):  # later runs (new processes, as a cron job makes): nothing is sent
        coordinator.forget_all()  # what a new process starts with
        async with make_client(sim, clock, credentials=wrong) as later_run:
            with pytest.raises(tskit.AuthenticationError, match="by another process or run"):
                await later_run.list_callbacks(ACCOUNT)
    assert sim.count("login") == 1 and not sim.is_locked(DEMO_USERNAME)
    record = _fingerprint.config_dir() / guard.FILE_NAME
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    assert "wrong-pw-123" not in record.read_text() and DEMO_CLIENT_SECRET not in record.read_text()
    async with make_client(sim, clock, credentials=demo_credentials) as fixed:  # corrected: tried, and works
        assert len(await fixed.list_callbacks(ACCOUNT)) == 2
    assert not guard.recorded("https://simulator.tskit.invalid", wrong)


async def test_an_unusable_refusal_record_does_not_hide_the_refusal(
    sim: Simulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TSKIT_FINGERPRINT_KEY", "short")  # refused by the key loader
    async with make_client(sim, clock) as client:
        assert len(await client.list_callbacks(ACCOUNT)) == 2  # logins still work
    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "wrong-pw-456")
    async with make_client(sim, clock, credentials=wrong) as client:
        with pytest.raises(tskit.AuthenticationError, match="does not try again"):
            await client.list_callbacks(ACCOUNT)
    assert "could not update the record of refused and failed logins" in caplog.text


async def test_refusal_messages_say_what_was_refused_and_what_to_do(sim: Simulator, clock: FakeClock) -> None:
    wrong_secret = tskit.Credentials(DEMO_CLIENT_ID, "wrong-secret", DEMO_USERNAME, "the-password")
    async with make_client(sim, clock, credentials=wrong_secret) as client:
        with pytest.raises(tskit.AuthenticationError) as caught:
            await client.list_callbacks(ACCOUNT)
    text = str(caught.value)
    assert "token" in text and "application key or secret" in text and "once the user is unlocked" not in text
    assert "recorded" in text and "tskit reset-login" in text
    wrong = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, "not-the-password")
    async with make_client(sim, clock, credentials=wrong) as client:
        with pytest.raises(tskit.AuthenticationError) as caught:
            await client.list_callbacks(ACCOUNT)
    assert ".." not in str(caught.value)
    sim.faults.scripted.append(Fault(status=429, retry_after=1, operations=("login",)))
    async with make_client(sim, clock, timeout=0.5) as client:  # too short to wait the throttle out
        with pytest.raises(tskit.AuthenticationError) as caught:
            await client.list_callbacks(ACCOUNT)
    assert "throttled" in str(caught.value) and "lock" not in str(caught.value)
