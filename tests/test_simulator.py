"""The simulator over real loopback HTTP, driven by a plain client written from Verizon's docs."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx2
import pytest

from tskit.simulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    Fault,
    Simulator,
    SimulatorConfig,
    SimulatorServer,
)

pytestmark = pytest.mark.server
ACCOUNT = "0000123456-00001"
EMPTY = "0000123456-00003"


@pytest.fixture
def http(server: SimulatorServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.base_url + "/api") as client:
        yield client


def token(http: httpx2.Client) -> str:
    response = http.post(
        "/ts/v1/oauth2/token", auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET), data={"grant_type": "client_credentials"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 3600
    return str(body["access_token"])


def login(http: httpx2.Client, bearer: str, password: str = DEMO_PASSWORD) -> httpx2.Response:
    return http.post(
        "/m2m/v1/session/login",
        headers={"Authorization": f"Bearer {bearer}"},
        json={"username": DEMO_USERNAME, "password": password},
    )


def headers(http: httpx2.Client) -> dict[str, str]:
    bearer = token(http)
    session = login(http, bearer).json()["sessionToken"]
    return {"Authorization": f"Bearer {bearer}", "VZ-M2M-Token": session}


def test_documented_flow_end_to_end(http: httpx2.Client) -> None:
    auth = headers(http)
    listed = http.get(f"/m2m/v1/callbacks/{ACCOUNT}", headers=auth)
    assert listed.status_code == 200
    assert listed.json() == [
        {
            "accountName": ACCOUNT,
            "serviceName": "CarrierService",
            "url": "https://listener.example.com/thingspace/carrier",
            "username": "tsuser",
            "password": "demo-pass-1",
        },
        {
            "accountName": ACCOUNT,
            "serviceName": "DeviceUsage",
            "url": "https://listener.example.com/thingspace/usage",
            "username": "",
            "password": "",
        },
    ]
    registered = http.post(
        f"/m2m/v1/callbacks/{EMPTY}",
        headers=auth,
        json={"name": "CarrierService", "url": "http://10.120.102.183:50559/CallbackListener"},
    )
    assert (registered.status_code, registered.json()) == (200, {"accountName": EMPTY, "serviceName": "CarrierService"})
    deregistered = http.delete(f"/m2m/v1/callbacks/{EMPTY}/name/CarrierService", headers=auth)
    assert deregistered.json() == {"accountName": EMPTY, "serviceName": "CarrierService"}
    empty = http.get(f"/m2m/v1/callbacks/{EMPTY}", headers=auth)
    assert (empty.status_code, empty.content) == (200, b"")  # Verizon: "the response body will be empty"
    logout = http.post("/m2m/v1/session/logout", headers=auth)
    assert logout.json() == {"sessionToken": auth["VZ-M2M-Token"]}
    after = http.get(f"/m2m/v1/callbacks/{ACCOUNT}", headers=auth)
    assert after.json()["errorCode"] == "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid"


def test_empty_list_as_json_array(http: httpx2.Client, sim: Simulator) -> None:
    sim.config.empty_list = "json-array"
    assert http.get(f"/m2m/v1/callbacks/{EMPTY}", headers=headers(http)).json() == []


def test_gateway_faults_for_missing_and_bad_bearer(http: httpx2.Client) -> None:
    missing = http.get(f"/m2m/v1/callbacks/{ACCOUNT}")
    assert missing.status_code == 401 and missing.json()["fault"]["code"] == "900902"
    bad = http.get(f"/m2m/v1/callbacks/{ACCOUNT}", headers={"Authorization": "Bearer nope", "VZ-M2M-Token": "x"})
    assert bad.status_code == 401 and bad.json()["fault"]["message"] == "Invalid Credentials"


def test_token_endpoint_errors(http: httpx2.Client) -> None:
    assert (
        http.post("/ts/v1/oauth2/token", data={"grant_type": "client_credentials"}).json()["fault"]["code"] == "900902"
    )
    wrong = http.post("/ts/v1/oauth2/token", auth=(DEMO_CLIENT_ID, "x"), data={"grant_type": "client_credentials"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    no_grant = http.post("/ts/v1/oauth2/token", auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert (no_grant.status_code, no_grant.json()["error_description"]) == (400, "Missing grant_type parameter value")


def test_same_token_within_the_hour_then_a_new_one(http: httpx2.Client, sim: Simulator) -> None:
    first = token(http)
    sim.advance(3000)
    assert token(http) == first
    sim.advance(601)
    assert token(http) != first


def test_revoke_gives_a_new_token_next_time(http: httpx2.Client) -> None:
    first = token(http)
    revoked = http.post(
        "/ts/v1/oauth2/revoke",
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        data={"grant_type": "client_credentials", "token": first},
    )
    assert (revoked.status_code, revoked.content, revoked.headers["revoked-token"]) == (200, b"", first)
    assert token(http) != first


def test_session_idle_timeout_slides(http: httpx2.Client, sim: Simulator) -> None:
    auth = headers(http)
    for _ in range(2):
        sim.advance(1100)  # under 20 minutes since the last use: still valid
        assert http.get(f"/m2m/v1/callbacks/{ACCOUNT}", headers=auth).status_code == 200
    sim.advance(1201)
    expired = http.get(f"/m2m/v1/callbacks/{ACCOUNT}", headers=auth)
    assert (expired.status_code, expired.json()["errorCode"]) == (
        400,
        "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired",
    )


def test_missing_session_token(http: httpx2.Client) -> None:
    auth = headers(http)
    del auth["VZ-M2M-Token"]
    answer = http.get(f"/m2m/v1/callbacks/{ACCOUNT}", headers=auth).json()
    assert answer["errorCode"] == "UnifiedWebService.REQUEST_FAILED.SessionToken.Format"


def test_lockout_after_five_failed_logins(http: httpx2.Client, sim: Simulator) -> None:
    bearer = token(http)
    for _ in range(5):
        assert login(http, bearer, "wrong").json()["errorCode"].endswith("Login.Failed")
    locked = login(http, bearer)  # even the right password now fails
    assert locked.status_code == 400
    assert locked.json()["errorCode"] == "UnifiedWebService.REQUEST_FAILED.UserLocked"
    assert sim.is_locked(DEMO_USERNAME)
    sim.unlock(DEMO_USERNAME)
    assert login(http, bearer).status_code == 200


def test_a_success_resets_the_failed_login_count(http: httpx2.Client, sim: Simulator) -> None:
    bearer = token(http)
    for _ in range(4):
        login(http, bearer, "wrong")
    assert login(http, bearer).status_code == 200
    for _ in range(4):
        login(http, bearer, "wrong")
    assert not sim.is_locked(DEMO_USERNAME)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "https://l.example.com/x"}, "INPUT_INVALID.ServiceName.Undefined"),
        ({"name": "Nope", "url": "https://l.example.com/x"}, "INPUT_INVALID.ServiceName.Invalid"),
        ({"name": "CarrierService"}, "INPUT_INVALID.Url.Invalid"),
        ({"name": "CarrierService", "url": "ftp://l.example.com/x"}, "INPUT_INVALID.Url.Invalid"),
        ({"name": "CarrierService", "url": "https://l.example.com:8080/x"}, "INPUT_INVALID.Url.Invalid"),
        ({"name": "CarrierService", "url": "https://l.example.com/x", "password": "p" * 41}, "Password.Invalid"),
        ({"name": "CarrierService", "url": "https://l.example.com/x", "username": 5}, "Username.Invalid"),
    ],
)
def test_register_body_checks(http: httpx2.Client, sim: Simulator, body: dict[str, object], code: str) -> None:
    answer = http.post(f"/m2m/v1/callbacks/{EMPTY}", headers=headers(http), json=body)
    assert answer.status_code == 400
    assert answer.json()["errorCode"].endswith(code)
    assert sim.registrations(EMPTY) == []


def test_register_needs_json_content_type(http: httpx2.Client) -> None:
    answer = http.post(f"/m2m/v1/callbacks/{EMPTY}", headers=headers(http), content=b"name=CarrierService")
    assert answer.json()["errorCode"].endswith("Request.ContentType")


def test_oversized_body_is_refused(http: httpx2.Client) -> None:
    answer = http.post(f"/m2m/v1/callbacks/{EMPTY}", headers=headers(http), json={"name": "x" * 70_000})
    assert answer.status_code == 413


def test_unknown_paths(http: httpx2.Client) -> None:
    auth = headers(http)
    assert http.get("/m2m/v2/callbacks/x", headers=auth).json()["fault"]["code"] == "900906"
    assert http.put(f"/m2m/v1/callbacks/{ACCOUNT}", headers=auth).json()["fault"]["code"] == "900906"
    assert http.get("/elsewhere").status_code == 404


def test_encoded_slash_in_a_name_is_not_a_path_separator(http: httpx2.Client, sim: Simulator) -> None:
    sim.config.deregister_missing = "ok"
    answer = http.delete(
        f"/m2m/v1/callbacks/{ACCOUNT}%2Fname%2FCarrierService/name/CarrierService", headers=headers(http)
    )
    assert answer.json()["errorCode"].endswith("AccountNotFound")
    assert len(sim.registrations(ACCOUNT)) == 2


def test_faults_over_loopback(http: httpx2.Client, sim: Simulator) -> None:
    auth = headers(http)
    sim.faults.scripted.append(Fault(status=429, retry_after=7))
    limited = http.get(f"/m2m/v1/callbacks/{ACCOUNT}", headers=auth)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    sim.faults.scripted.append(Fault(drop="after"))
    with pytest.raises(httpx2.RemoteProtocolError):
        http.get(f"/m2m/v1/callbacks/{ACCOUNT}", headers=auth)
    assert http.get(f"/m2m/v1/callbacks/{ACCOUNT}", headers=auth).status_code == 200


def test_fault_rates_are_seeded_and_roughly_right() -> None:
    def outcomes(seed: int) -> list[str]:
        sim = Simulator(SimulatorConfig())
        sim.faults.seed = seed
        sim.faults.__post_init__()
        sim.faults.error_rate, sim.faults.rate_limit_rate, sim.faults.drop_rate = 0.1, 0.1, 0.1
        return [
            "drop" if (f := sim.faults.draw("list")) and f.drop else str(f.status) if f else "ok" for _ in range(2000)
        ]

    first = outcomes(7)
    assert first == outcomes(7)
    for kind in ("500", "429", "drop"):
        assert 140 < first.count(kind) < 260
    assert Simulator().faults.draw("login") is None  # rates never touch the login


def test_server_binds_loopback_on_a_free_port_and_stops(sim: Simulator) -> None:
    with sim.serve() as server:
        assert server.host == "127.0.0.1" and server.port > 0
        url = server.base_url
        assert httpx2.get(url + "/elsewhere").status_code == 404
        assert server.env()["THINGSPACE_BASE_URL"] == url
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(url + "/elsewhere")


def test_server_socket_lets_asyncio_turn_nagle_off() -> None:
    """asyncio sets TCP_NODELAY only on sockets created as IPPROTO_TCP; without it each answer waits ~40 ms."""
    from tskit._serving import bind

    sock = bind()
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
