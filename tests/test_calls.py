"""The three calls, in-process and over loopback HTTP, against the simulator's own state."""

from __future__ import annotations

import pytest

import tskit
from tskit.simulator import Simulator

pytestmark = pytest.mark.anyio

ACCOUNT = "0000123456-00001"
EMPTY = "0000123456-00003"


async def test_list_returns_records_as_registered(client: tskit.ThingSpaceClient) -> None:
    callbacks = await client.list_callbacks(ACCOUNT)
    assert [(c.service_name, c.url, c.username) for c in callbacks] == [
        ("CarrierService", "https://listener.example.com/thingspace/carrier", "tsuser"),
        ("DeviceUsage", "https://listener.example.com/thingspace/usage", ""),
    ]
    assert callbacks[0].password.reveal() == "demo-pass-1"
    assert "demo-pass-1" not in repr(callbacks[0])
    assert not callbacks[1].password


async def test_register_then_list_then_deregister(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    result = await client.register_callback(
        EMPTY, "CarrierService", "https://listener.example.com/carrier", username="tsuser", password="s3cret"
    )
    assert (result.account_name, result.service_name, result.confirmed_by_listing) == (EMPTY, "CarrierService", False)
    assert sim.registrations(EMPTY) == [
        {
            "serviceName": "CarrierService",
            "url": "https://listener.example.com/carrier",
            "username": "tsuser",
            "password": "s3cret",
        }
    ]
    listed = await client.list_callbacks(EMPTY)
    assert [(c.account_name, c.service_name, c.password.reveal()) for c in listed] == [
        (EMPTY, "CarrierService", "s3cret")
    ]
    result = await client.deregister_callback(EMPTY, "CarrierService")
    assert (result.account_name, result.service_name) == (EMPTY, "CarrierService")
    assert sim.registrations(EMPTY) == []
    assert await client.list_callbacks(EMPTY) == []


async def test_register_without_credentials_sends_none(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    await client.register_callback(EMPTY, "DeviceUsage", "https://listener.example.com/usage")
    assert sim.registrations(EMPTY)[0]["username"] == ""
    assert sim.registrations(EMPTY)[0]["password"] == ""


@pytest.mark.parametrize("empty_list", ["empty-body", "json-array"])
async def test_empty_account_lists_as_empty_whatever_the_body(
    client: tskit.ThingSpaceClient, sim: Simulator, empty_list: str
) -> None:
    sim.config.empty_list = empty_list  # type: ignore[assignment]
    assert await client.list_callbacks(EMPTY) == []


async def test_reregister_replaces_by_default(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    await client.register_callback(ACCOUNT, "CarrierService", "https://new.example.com/carrier")
    assert sim.registrations(ACCOUNT)[0]["url"] == "https://new.example.com/carrier"
    assert len(sim.registrations(ACCOUNT)) == 2


async def test_reregister_error_mode(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    sim.config.reregister = "error"
    with pytest.raises(tskit.ApiError) as caught:
        await client.register_callback(ACCOUNT, "CarrierService", "https://new.example.com/carrier")
    assert caught.value.status_code == 400
    assert caught.value.error_code == "UnifiedWebService.REQUEST_FAILED.CallbackAlreadyRegistered"
    assert sim.registrations(ACCOUNT)[0]["url"] == "https://listener.example.com/thingspace/carrier"


async def test_deregister_of_a_missing_callback_succeeds_by_listing(
    client: tskit.ThingSpaceClient, sim: Simulator
) -> None:
    # ThingSpace answers CallbackNotRegistered (the simulator's default): what was asked holds, and
    # two independent listings show it, so the call succeeds and says it was decided by listing.
    result = await client.deregister_callback(EMPTY, "CarrierService")
    assert (result.outcome, result.confirmed_by_listing, result.was_registered) == ("confirmed", True, False)
    assert [r.operation for r in sim.requests][-3:] == ["deregister", "list", "list"]
    assert [r.status for r in sim.requests if r.operation == "deregister"] == [400]
    sim.config.deregister_missing = "ok"
    result = await client.deregister_callback(EMPTY, "CarrierService")
    assert (result.service_name, result.outcome) == ("CarrierService", "sent")


async def test_unknown_account_is_a_typed_api_error(client: tskit.ThingSpaceClient) -> None:
    with pytest.raises(tskit.ApiError) as caught:
        await client.list_callbacks("9999999999-00001")
    error = caught.value
    assert (error.status_code, error.error_code) == (400, "UnifiedWebService.REQUEST_FAILED.AccountNotFound")
    assert error.error_message == "Account 9999999999-00001 was not found."
    assert (error.method, error.path) == ("GET", "/api/m2m/v1/callbacks/9999999999-00001")
    assert "AccountNotFound" in str(error)


async def test_account_of_another_user_is_refused(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    sim.add_user("someone-else", "pw-other", accounts=["0000999999-00001"])
    with pytest.raises(tskit.ApiError) as caught:
        await client.list_callbacks("0000999999-00001")
    assert caught.value.error_code == "UnifiedWebService.REQUEST_FAILED.AccountName"


async def test_server_enforces_ports_when_client_check_is_skipped(
    client: tskit.ThingSpaceClient, sim: Simulator
) -> None:
    with pytest.raises(tskit.ApiError) as caught:
        await client.register_callback(
            EMPTY, "CarrierService", "https://listener.example.com:8443/x", allow_any_port=True
        )
    assert caught.value.error_code == "UnifiedWebService.INPUT_INVALID.Url.Invalid"
    assert "8443" in caught.value.error_message
    sim.config.enforce_listener_ports = False
    await client.register_callback(EMPTY, "CarrierService", "https://listener.example.com:8443/x", allow_any_port=True)
    assert sim.registrations(EMPTY)[0]["url"] == "https://listener.example.com:8443/x"


async def test_unknown_service_passed_explicitly_reaches_the_server(
    client: tskit.ThingSpaceClient, sim: Simulator
) -> None:
    with pytest.raises(tskit.ApiError) as caught:
        await client.register_callback(EMPTY, "BrandNewService", "https://l.example.com/x", allow_unknown_service=True)
    assert caught.value.error_code == "UnifiedWebService.INPUT_INVALID.ServiceName.Invalid"
    assert sim.count("register") == 1


async def test_sdk_style_requests_are_accepted(client: tskit.ThingSpaceClient, sim: Simulator) -> None:
    """The three calls leave the exact paths and bodies of Verizon's documentation in the log."""
    await client.list_callbacks(ACCOUNT)
    await client.register_callback(EMPTY, "NiddService", "https://l.example.com/nidd")
    await client.deregister_callback(EMPTY, "NiddService")
    calls = [(r.method, r.path, r.status) for r in sim.requests]
    assert calls == [
        ("POST", "/api/ts/v1/oauth2/token", 200),
        ("POST", "/api/m2m/v1/session/login", 200),
        ("GET", f"/api/m2m/v1/callbacks/{ACCOUNT}", 200),
        ("POST", f"/api/m2m/v1/callbacks/{EMPTY}", 200),
        ("DELETE", f"/api/m2m/v1/callbacks/{EMPTY}/name/NiddService", 200),
    ]


def test_facade_returns_frames_and_results(ts: tskit.ThingSpace, sim: Simulator) -> None:
    frame = ts.list_callbacks(ACCOUNT)
    assert list(frame.columns) == ["account_name", "service_name", "url", "username", "password"]
    assert frame["password"].tolist() == ["********", ""]
    assert "demo-pass-1" not in frame.to_string() + frame.to_html() + frame.to_csv()
    result = ts.register_callback(EMPTY, "CarrierService", "https://l.example.com/c", username="u", password="s3cret")
    assert (result.account_name, result.service_name) == (EMPTY, "CarrierService")
    assert ts.list_callbacks(EMPTY)["password"].tolist() == ["********"]
    ts.deregister_callback(EMPTY, "CarrierService")
    empty = ts.list_callbacks(EMPTY)
    assert empty.empty and list(empty.columns) == list(tskit.CALLBACK_COLUMNS)
    # the same kinds of columns even when there are no rows: categoricals for names, text for the rest
    assert [str(d) for d in empty.dtypes] == [str(d) for d in frame.dtypes] == ["category"] * 2 + ["string"] * 3
    assert sim.registrations(EMPTY) == []


async def test_facade_async_twins(ts: tskit.ThingSpace, sim: Simulator) -> None:
    frame = await ts.alist_callbacks(ACCOUNT)
    assert frame["service_name"].tolist() == ["CarrierService", "DeviceUsage"]
    await ts.aregister_callback(EMPTY, "DeviceUsage", "https://l.example.com/u")
    assert [r["serviceName"] for r in sim.registrations(EMPTY)] == ["DeviceUsage"]
    await ts.aderegister_callback(EMPTY, "DeviceUsage")
    assert sim.registrations(EMPTY) == []
    await ts.aclose()


def test_services_catalogue_frame() -> None:
    frame = tskit.services_frame()
    assert len(frame) == len(tskit.SERVICE_CATALOGUE) == 23
    assert str(frame.set_index("service_name").loc["CarrierService", "description"]).startswith("Results of state")
