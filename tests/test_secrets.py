"""Secrets never show: not in reprs, frames, errors or logs, even when a server echoes them."""

from __future__ import annotations

import json
import logging
import pickle

import httpx2
import pytest

import tskit
from tests.conftest import FakeClock, make_client
from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME, Fault, Simulator

pytestmark = pytest.mark.anyio
ACCOUNT = "0000123456-00003"
CALLBACK_PASSWORD = "cb-pass-9f8e7d"


def held_secrets(client: tskit.ThingSpaceClient) -> list[str]:
    return [DEMO_CLIENT_SECRET, DEMO_PASSWORD, CALLBACK_PASSWORD, *client.auth.secret_values()]


async def test_no_secret_in_reprs_frames_errors_or_logs(
    sim: Simulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    shown: list[str] = []
    ts = tskit.connect(simulator=sim)
    client = ts.client
    await ts.aregister_callback(
        ACCOUNT, "CarrierService", "https://l.example.com/c", username="u", password=CALLBACK_PASSWORD
    )
    frame = await ts.alist_callbacks(ACCOUNT)
    records = await client.list_callbacks(ACCOUNT)
    shown += [
        repr(ts),
        repr(client),
        repr(client.auth),
        repr(records),
        str(records[0].password),
        f"{records[0].password}",
        frame.to_string(),
        frame.to_html(),
        frame.to_csv(),
        frame.to_json(),
    ]
    sim.faults.scripted.extend([Fault(status=500)] * 3)
    with pytest.raises(tskit.ApiError) as caught:
        await client.list_callbacks(ACCOUNT)
    shown += [str(caught.value), repr(caught.value)]
    secrets = held_secrets(client)
    assert len(set(secrets)) == 6  # the Basic credentials, and the OAuth and session tokens held by now
    text = "\n".join(shown) + "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in text
    await ts.aclose()


async def test_server_echoing_secrets_in_errors_is_scrubbed(sim: Simulator, clock: FakeClock) -> None:
    inner = sim.transport()

    async def echo(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/session/login"):
            sent = json.loads(request.content)
            return httpx2.Response(
                400, json={"errorCode": "X.Login", "errorMessage": f"bad password {sent['password']}"}
            )
        response: httpx2.Response = await inner.handle_async_request(request)
        return response

    async with make_client(sim, clock, transport=httpx2.MockTransport(echo)) as client:
        with pytest.raises(tskit.AuthenticationError) as caught:
            await client.list_callbacks(ACCOUNT)
    assert DEMO_PASSWORD not in str(caught.value)
    assert "bad password ***" in str(caught.value)


async def test_register_error_echoing_the_callback_password_is_scrubbed(sim: Simulator, clock: FakeClock) -> None:
    inner = sim.transport()

    async def echo(request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST" and "/callbacks/" in request.url.path:
            return httpx2.Response(400, json={"errorCode": "X", "errorMessage": request.content.decode()})
        response: httpx2.Response = await inner.handle_async_request(request)
        return response

    async with make_client(sim, clock, transport=httpx2.MockTransport(echo)) as client:
        with pytest.raises(tskit.ApiError) as caught:
            await client.register_callback(
                ACCOUNT, "CarrierService", "https://l.example.com/c", password=CALLBACK_PASSWORD
            )
    assert CALLBACK_PASSWORD not in str(caught.value)


def test_credentials_repr_and_pickle() -> None:
    creds = tskit.Credentials(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USERNAME, DEMO_PASSWORD)
    assert DEMO_CLIENT_SECRET not in repr(creds) and DEMO_PASSWORD not in repr(creds)
    assert DEMO_USERNAME in repr(creds)
    with pytest.raises(TypeError):
        pickle.dumps(creds.password)


def test_secret_behaves() -> None:
    secret = tskit.Secret("hunter2")
    assert repr(secret) == "Secret('********')" and str(secret) == "********" and f"{secret:>10}" == "  ********"
    assert secret == "hunter2" and secret == tskit.Secret("hunter2") and secret != "other"
    assert secret.reveal() == "hunter2" and bool(secret) and not tskit.Secret("")
    assert str(tskit.Secret("")) == ""
