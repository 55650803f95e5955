"""Verizon's own generated Python SDK, unchanged, against the simulator served on loopback.

This is the check that the simulator is faithful to Verizon's documentation: the SDK
(``sdksio-verizon-apis-sdk``) is generated from Verizon's API description, not from tskit.
"""

from __future__ import annotations

from typing import Any

import pytest

from tskit.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME, Simulator, SimulatorServer

verizon = pytest.importorskip("verizon", reason="Verizon's SDK (sdksio-verizon-apis-sdk) is a dev dependency")

from verizon.configuration import Configuration, Server  # noqa: E402
from verizon.exceptions.connectivity_management_result_exception import (  # noqa: E402
    ConnectivityManagementResultException,
)
from verizon.http.auth.thingspace_oauth import ThingspaceOauthCredentials  # noqa: E402
from verizon.http.auth.vz_m2m_token import VZM2mTokenCredentials  # noqa: E402
from verizon.models.log_in_request import LogInRequest  # noqa: E402
from verizon.models.register_callback_request import RegisterCallbackRequest  # noqa: E402
from verizon.verizon_client import VerizonClient  # noqa: E402

pytestmark = pytest.mark.server


def sdk_client(server: SimulatorServer, session_token: str | None = None) -> Any:
    """The SDK has no base-URL option; overriding get_base_uri is its documented seam."""

    class Loopback(Configuration):  # type: ignore[misc]
        def get_base_uri(self, server_: Server = Server.THINGSPACE) -> str:
            root = server.base_url + "/api"
            return root + "/ts/v1" if server_ == Server.OAUTH_SERVER else root

    oauth = ThingspaceOauthCredentials(oauth_client_id=DEMO_CLIENT_ID, oauth_client_secret=DEMO_CLIENT_SECRET)
    m2m = VZM2mTokenCredentials(vz_m2m_token=session_token) if session_token else None
    return VerizonClient(config=Loopback(thingspace_oauth_credentials=oauth, vz_m2m_token_credentials=m2m))


def test_verizon_sdk_runs_the_three_calls_unchanged(server: SimulatorServer, sim: Simulator) -> None:
    login = sdk_client(server).session_management.start_connectivity_management_session(
        body=LogInRequest(username=DEMO_USERNAME, password=DEMO_PASSWORD)
    )
    assert login.status_code == 200
    callbacks = sdk_client(server, login.body.session_token).connectivity_callbacks

    listed = callbacks.list_registered_callbacks("0000123456-00001")
    assert [(c.service_name, c.url) for c in listed.body] == [
        ("CarrierService", "https://listener.example.com/thingspace/carrier"),
        ("DeviceUsage", "https://listener.example.com/thingspace/usage"),
    ]
    registered = callbacks.register_callback(
        "0000123456-00003", RegisterCallbackRequest(name="CarrierService", url="https://l.example.com/c")
    )
    assert (registered.body.account_name, registered.body.service_name) == ("0000123456-00003", "CarrierService")
    assert sim.registrations("0000123456-00003")[0]["url"] == "https://l.example.com/c"
    deregistered = callbacks.deregister_callback("0000123456-00003", "CarrierService")
    assert deregistered.body.service_name == "CarrierService"
    assert callbacks.list_registered_callbacks("0000123456-00003").body is None  # the SDK's reading of an empty body

    with pytest.raises(ConnectivityManagementResultException) as caught:
        callbacks.list_registered_callbacks("9999999999-00001")
    assert (caught.value.response_code, caught.value.error_code) == (
        400,
        "UnifiedWebService.REQUEST_FAILED.AccountNotFound",
    )


def test_verizon_sdk_against_sandbox_mode_with_any_session_token() -> None:
    """The SDK's own doc examples, as the API console's simulator takes them: TestAccount-2 for register."""
    with Simulator(sandbox=True, demo=False).serve() as sandbox:
        callbacks = sdk_client(sandbox, "any-value-the-console-accepts").connectivity_callbacks
        listed = callbacks.list_registered_callbacks("TestAccount-1")
        assert [c.service_name for c in listed.body] == ["CarrierService", "DeviceUsage"]
        registered = callbacks.register_callback(
            "TestAccount-2",
            RegisterCallbackRequest(
                name="CarrierService", url="http://10.120.102.183:50559/CallbackListener/CarrierServiceMessages.asmx"
            ),
        )
        assert (registered.body.account_name, registered.body.service_name) == ("TestAccount-2", "CarrierService")
        assert callbacks.deregister_callback("1223334444-00001", "CarrierService").body.service_name == "CarrierService"
