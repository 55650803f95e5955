"""Retries: listing on passing failures; register and deregister only when it is safe."""

from __future__ import annotations

import socket

import httpx2
import pytest

import tskit
from tests.conftest import FakeClock, make_client
from tskit.simulator import Fault, Simulator

pytestmark = pytest.mark.anyio
ACCOUNT = "0000123456-00001"
EMPTY = "0000123456-00003"
URL = "https://listener.example.com/carrier"


async def test_list_is_retried_on_5xx_and_drops(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    await client.list_callbacks(ACCOUNT)  # log in first, so that faults hit the calls
    sim.faults.scripted.extend([Fault(status=503), Fault(drop="after")])
    assert len(await client.list_callbacks(ACCOUNT)) == 2
    # the first call, the 503, the answer dropped on the way back, the retry that succeeded
    assert [r.status for r in sim.requests if r.operation == "list"] == [200, 503, 200, 200]


async def test_retry_after_is_honoured(client: tskit.ThingSpaceClient, sim: Simulator, sleeps: list[float]) -> None:
    client.retry = tskit.RetryPolicy(backoff=10, max_backoff=10)  # so an ignored Retry-After would show
    await client.list_callbacks(ACCOUNT)
    sim.faults.scripted.append(Fault(status=429, retry_after=0.3))
    sleeps.clear()
    await client.list_callbacks(ACCOUNT)
    assert sleeps == [0.3]  # the wait ThingSpace asked for, not the backoff of 10 s
    assert [r.status for r in sim.requests if r.operation == "list"] == [200, 429, 200]


async def test_too_long_retry_after_gives_up_at_once(sim: Simulator, clock: FakeClock, sleeps: list[float]) -> None:
    async with make_client(sim, clock, retry=tskit.RetryPolicy(max_retry_after=5)) as client:
        sim.faults.scripted.append(Fault(status=429, retry_after=120))
        with pytest.raises(tskit.RateLimitError) as caught:
            await client.list_callbacks(ACCOUNT)
    assert sleeps == []  # no wait at all: neither the 120 s asked for nor a backoff
    assert caught.value.retry_after == 120
    assert sim.count("list") == 1


async def test_retries_stop_after_the_allowed_attempts(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock, retry=tskit.RetryPolicy(attempts=3, backoff=0.01)) as client:
        sim.faults.scripted.extend([Fault(status=500)] * 5)
        with pytest.raises(tskit.ApiError) as caught:
            await client.list_callbacks(ACCOUNT)
    assert caught.value.status_code == 500
    assert sim.count("list") == 3


async def test_4xx_is_not_retried(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    with pytest.raises(tskit.ApiError):
        await client.list_callbacks("9999999999-00001")
    assert sim.count("list") == 1


async def test_register_answer_lost_is_confirmed_by_listing_not_resent(
    client: tskit.ThingSpaceClient, sim: Simulator
) -> None:
    await client.list_callbacks(EMPTY)
    sim.faults.scripted.append(Fault(drop="after", operations=("register",)))
    result = await client.register_callback(EMPTY, "CarrierService", URL, username="u", password="p")
    assert result.confirmed_by_listing
    assert (result.account_name, result.service_name) == (EMPTY, "CarrierService")
    assert sim.count("register") == 1
    assert sim.registrations(EMPTY)[0]["url"] == URL


async def test_register_dropped_before_it_took_effect_is_resent(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    await client.list_callbacks(EMPTY)
    sim.faults.scripted.append(Fault(drop="before", operations=("register",)))
    result = await client.register_callback(EMPTY, "CarrierService", URL)
    assert not result.confirmed_by_listing
    assert sim.count("register") == 2  # the listing showed nothing, so it was sent again
    assert len(sim.registrations(EMPTY)) == 1


async def test_register_500_checks_the_listing_before_resending(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    await client.list_callbacks(EMPTY)
    sim.faults.scripted.append(Fault(status=500, operations=("register",)))
    await client.register_callback(EMPTY, "CarrierService", URL)
    operations = [r.operation for r in sim.requests][-3:]
    assert operations == ["register", "list", "register"]


async def test_register_429_is_resent_without_listing(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    await client.list_callbacks(EMPTY)
    sim.faults.scripted.append(Fault(status=429, retry_after=0, operations=("register",)))
    await client.register_callback(EMPTY, "CarrierService", URL)
    assert [r.operation for r in sim.requests][-2:] == ["register", "register"]


async def test_deregister_answer_lost_is_confirmed_by_listing(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    await client.list_callbacks(ACCOUNT)
    sim.faults.scripted.append(Fault(drop="after", operations=("deregister",)))
    result = await client.deregister_callback(ACCOUNT, "CarrierService")
    assert result.confirmed_by_listing
    assert sim.count("deregister") == 1
    assert [r["serviceName"] for r in sim.registrations(ACCOUNT)] == ["DeviceUsage"]


async def test_outcome_unknown_when_the_listing_fails_too(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock, retry=tskit.RetryPolicy(attempts=1)) as client:
        await client.list_callbacks(EMPTY)
        sim.faults.scripted.extend([Fault(drop="after", operations=("register",)), Fault(status=503)])
        with pytest.raises(tskit.TransportError) as caught:
            await client.register_callback(EMPTY, "CarrierService", URL)
    assert caught.value.may_have_applied and caught.value.reason == tskit.Reason.NOT_REACHED
    assert any("outcome is unknown" in note for note in caught.value.__notes__)
    assert sim.count("register") == 1


async def test_a_refused_register_has_not_applied(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    await client.list_callbacks(EMPTY)
    sim.faults.scripted.append(Fault(status=400, operations=("register",)))
    with pytest.raises(tskit.ApiError) as caught:
        await client.register_callback(EMPTY, "CarrierService", URL)
    assert (caught.value.reason, caught.value.may_have_applied) == (tskit.Reason.API_ERROR, False)


async def test_a_register_no_listing_shows_may_have_applied(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock, retry=tskit.RetryPolicy(attempts=1)) as client:
        await client.list_callbacks(EMPTY)
        sim.faults.scripted.append(Fault(status=500, operations=("register",)))
        with pytest.raises(tskit.ApiError) as caught:
            await client.register_callback(EMPTY, "CarrierService", URL)
    assert caught.value.may_have_applied and caught.value.status_code == 500


async def test_register_is_not_retried_without_a_policy(sim: Simulator, clock: FakeClock) -> None:
    async with make_client(sim, clock, retry=tskit.NO_RETRY) as client:
        sim.faults.scripted.append(Fault(status=429, retry_after=0, operations=("register",)))
        with pytest.raises(tskit.RateLimitError):
            await client.register_callback(EMPTY, "CarrierService", URL)
    assert sim.registrations(EMPTY) == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_a_transport_error(sim: Simulator, clock: FakeClock) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with make_client(sim, clock, base_url=url, retry=tskit.RetryPolicy(attempts=2, backoff=0.01)) as client:
        with pytest.raises(tskit.TransportError) as caught:
            await client.list_callbacks(ACCOUNT)
    assert caught.value.reason == tskit.Reason.NOT_REACHED and not caught.value.may_have_applied


async def test_slow_answer_is_a_timeout(sim: Simulator, clock: FakeClock) -> None:
    with sim.serve() as server:
        # The login is made with a generous timeout: on a loaded machine its two steps alone may take 0.2 s.
        async with make_client(sim, clock, base_url=server.base_url) as warm:
            await warm.list_callbacks(ACCOUNT)
        async with make_client(sim, clock, base_url=server.base_url, timeout=0.2, retry=tskit.NO_RETRY) as client:
            sim.faults.latency = 1.0
            with pytest.raises(tskit.RequestTimeout) as caught:
                await client.list_callbacks(ACCOUNT)
            assert caught.value.reason == tskit.Reason.TIMEOUT and "0.2 s" in str(caught.value)
            sim.faults.latency = 0
        assert sim.count("login") == 1  # the second client used the first one's session


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        tskit.RetryPolicy(attempts=0)
    policy = tskit.RetryPolicy(attempts=3, backoff=1, max_backoff=1.5)
    assert policy.delay(3) is None
    assert 0.5 <= (policy.delay(1) or 0) <= 1
    assert 0.75 <= (policy.delay(2) or 0) <= 1.5
    assert policy.delay(1, retry_after=4) == 4


def _transport_for(client: tskit.ThingSpaceClient, url: str) -> httpx2.AsyncBaseTransport:
    return client._client()._transport_for_url(httpx2.URL(url))


def _proxy_url(transport: httpx2.AsyncBaseTransport) -> str | None:
    pool = getattr(transport, "_pool", None)
    proxy = getattr(pool, "_proxy_url", None)
    return None if proxy is None else f"{proxy.scheme.decode()}://{proxy.host.decode()}:{proxy.port}"


async def test_the_client_takes_the_proxy_from_the_environment_as_httpx2_does(
    monkeypatch: pytest.MonkeyPatch, demo_credentials
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.net:3128")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with tskit.ThingSpaceClient(demo_credentials, base_url="https://thingspace.verizon.com") as client:
        assert (
            _proxy_url(_transport_for(client, "https://thingspace.verizon.com/api")) == "http://proxy.example.net:3128"
        )
    monkeypatch.setenv("NO_PROXY", "thingspace.verizon.com")
    async with tskit.ThingSpaceClient(demo_credentials, base_url="https://thingspace.verizon.com") as client:
        assert _proxy_url(_transport_for(client, "https://thingspace.verizon.com/api")) is None


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"])
async def test_a_loopback_base_url_never_goes_through_a_proxy(
    monkeypatch: pytest.MonkeyPatch, demo_credentials, base_url: str
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://proxy.example.net:3128")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with tskit.ThingSpaceClient(demo_credentials, base_url=base_url) as client:
        transport = _transport_for(client, base_url + "/api/m2m/v1/session/login")
        assert isinstance(transport, httpx2.AsyncHTTPTransport)
        assert _proxy_url(transport) is None
        assert transport._pool._retries == 0  # nothing below tskit sends a request again
        # the environment's proxies are not even read (a client only ever talks to its base URL)
        assert _proxy_url(_transport_for(client, "https://example.org/")) is None


async def test_limits_are_httpx2_limits_of_the_pool(demo_credentials) -> None:
    limits = httpx2.Limits(max_connections=7, max_keepalive_connections=3, keepalive_expiry=2.5)
    async with tskit.ThingSpaceClient(demo_credentials, base_url="http://127.0.0.1:9", limits=limits) as client:
        pool = _transport_for(client, "http://127.0.0.1:9/")._pool  # type: ignore[attr-defined]
        assert (pool._max_connections, pool._max_keepalive_connections, pool._keepalive_expiry) == (7, 3, 2.5)


async def test_each_try_waits_at_most_the_time_left_of_the_call_in_every_phase(sim: Simulator) -> None:
    seen: list[dict[str, float | None]] = []
    inner: httpx2.AsyncBaseTransport = sim.transport()

    class Recording(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            if "/callbacks/" in request.url.path:
                seen.append(request.extensions["timeout"])
            return await inner.handle_async_request(request)

    async with make_client(sim, FakeClock(), transport=Recording(), timeout=5.0) as client:
        await client.list_callbacks(ACCOUNT)
        await client.list_callbacks(ACCOUNT)
    assert len(seen) == 2
    for timeout in seen:  # connect, read, write and pool: each the time left of the call, never more
        assert set(timeout) == {"connect", "read", "write", "pool"}
        assert len(set(timeout.values())) == 1
        assert 0 < (timeout["read"] or 0) <= 5.0
