"""Every error shape ThingSpace uses, and hostile or malformed answers, become clear typed errors."""

from __future__ import annotations

import json

import httpx2
import pytest

import tskit
from tests.conftest import FakeClock, make_client
from tskit._errors import error_from_response, parse_error_body, parse_retry_after, scrub
from tskit.simulator import Simulator

pytestmark = pytest.mark.anyio
ACCOUNT = "0000123456-00001"


def test_thingspace_error_shape() -> None:
    body = json.dumps({"errorCode": "UnifiedWebService.REQUEST_FAILED.AccountNotFound", "errorMessage": "No account"})
    assert parse_error_body(body.encode()) == ("UnifiedWebService.REQUEST_FAILED.AccountNotFound", "No account")


def test_gateway_fault_shape() -> None:
    body = {"fault": {"code": "900901", "message": "Invalid Credentials", "description": "Access failure"}}
    assert parse_error_body(json.dumps(body).encode()) == ("900901", "Invalid Credentials: Access failure")


def test_oauth_error_shape() -> None:
    body = {"error": "invalid_client", "error_description": "Client authentication failed"}
    assert parse_error_body(json.dumps(body).encode()) == ("invalid_client", "Client authentication failed")


def test_gateway_xml_fault() -> None:
    body = (
        b'<am:fault xmlns:am="http://wso2.org/apimanager"><am:code>404</am:code><am:type>Status report</am:type>'
        b"<am:message>Not Found</am:message>"
        b"<am:description>The requested resource is not available.</am:description></am:fault>"
    )
    assert parse_error_body(body) == ("404", "Not Found: The requested resource is not available.")


def test_plain_text_and_html() -> None:
    assert parse_error_body(b"The requested resource is not available") == (
        "",
        "The requested resource is not available",
    )


def test_error_fields_of_unexpected_types_are_kept_as_text() -> None:
    assert parse_error_body(b'{"errorCode": 42, "errorMessage": null}') == ("42", "")


def test_hostile_bodies_are_cut_cleaned_and_scrubbed() -> None:
    body = ("\x1b[31mboom\x00 " + "A" * 5000 + " s3cr3t-value").encode()
    error = error_from_response(500, body, method="GET", path="/p", secrets=["s3cr3t-value"])
    assert len(error.error_message) <= 300
    assert "\x1b" not in error.error_message and "\x00" not in error.error_message
    error = error_from_response(
        400,
        b'{"errorCode": "X", "errorMessage": "bad s3cr3t-value"}',
        method="GET",
        path="/p",
        secrets=["s3cr3t-value"],
    )
    assert error.error_message == "bad ***"


def test_empty_error_body_uses_the_reason() -> None:
    error = error_from_response(502, b"", method="GET", path="/p", reason="Bad Gateway")
    assert (error.error_code, error.error_message) == ("", "Bad Gateway")
    assert str(error) == "ThingSpace answered 502 to GET /p - Bad Gateway"


def test_status_selects_the_class() -> None:
    assert type(error_from_response(401, b"", method="GET", path="/p")) is tskit.AuthenticationError
    assert type(error_from_response(429, b"", method="GET", path="/p")) is tskit.RateLimitError
    assert type(error_from_response(404, b"", method="GET", path="/p")) is tskit.ApiError


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: no wait
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_scrub_replaces_tiny_secrets_as_whole_words_only() -> None:
    # Replacing two letters everywhere would garble the text; a word of their own is the secret.
    assert scrub("Zq in Zqx and xZq", ["Zq"]) == "*** in Zqx and xZq"


def test_scrub_keeps_a_path_ending_in_a_field_name_and_hides_the_fields() -> None:
    assert scrub("POST /api/ts/v1/oauth2/token: could not connect") == "POST /api/ts/v1/oauth2/token: could not connect"
    assert scrub("token: abc, password=def") == "token: ***, password=***"
    assert scrub('{"access_token":"abc"} /x?token=def') == '{"access_token":***} /x?token=***'


def test_error_tree() -> None:
    for cls in (tskit.ValidationError, tskit.ApiError, tskit.TransportError, tskit.UnexpectedResponseError):
        assert issubclass(cls, tskit.ThingSpaceError)
    assert issubclass(tskit.AuthenticationError, tskit.ApiError)
    assert issubclass(tskit.RequestTimeout, tskit.TransportError)
    assert issubclass(tskit.ValidationError, ValueError)


def answering(sim: Simulator, body: bytes, status: int = 200) -> httpx2.AsyncBaseTransport:
    """The simulator for auth; a fixed answer for the callbacks calls."""
    inner = sim.transport()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        if "/callbacks/" in request.url.path:
            return httpx2.Response(status, content=body)
        response: httpx2.Response = await inner.handle_async_request(request)
        return response

    return httpx2.MockTransport(handler)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html>oops</html>", "body is not JSON"),
        (b'{"accountName": "x"}', "expected a JSON array"),
        (b'[{"accountName": "x", "serviceName": "CarrierService"}]', "'url' is missing"),
        (b'[{"accountName": "x", "serviceName": 5, "url": "u"}]', "'serviceName' should be a string"),
        (b"[1, 2]", "malformed"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a":' * 100_000, "nested too deeply"),
        (b"[" + b'{"accountName":"a","serviceName":"s","url":"u"},' * 10_001 + b'{"accountName":"a"}]', "JSON array"),
    ],
)
async def test_malformed_list_answers(sim: Simulator, clock: FakeClock, body: bytes, words: str) -> None:
    async with make_client(sim, clock, transport=answering(sim, body)) as client:
        with pytest.raises(tskit.UnexpectedResponseError, match=words) as caught:
            await client.list_callbacks(ACCOUNT)
    assert caught.value.status_code == 200
    assert caught.value.method == "GET"


@pytest.mark.parametrize("body", [b"", b"[]", b'"ok"', b'{"accountName": 1, "serviceName": "CarrierService"}'])
async def test_malformed_register_answers(sim: Simulator, clock: FakeClock, body: bytes) -> None:
    async with make_client(sim, clock, transport=answering(sim, body)) as client:
        with pytest.raises(tskit.UnexpectedResponseError):
            await client.register_callback(ACCOUNT, "CarrierService", "https://l.example.com/c")


async def test_gateway_403_xml_becomes_api_error(sim: Simulator, clock: FakeClock) -> None:
    body = b"<am:fault><am:code>404</am:code><am:message>Not Found</am:message></am:fault>"
    async with make_client(sim, clock, transport=answering(sim, body, status=403)) as client:
        with pytest.raises(tskit.ApiError) as caught:
            await client.list_callbacks(ACCOUNT)
    assert (caught.value.status_code, caught.value.error_code, caught.value.error_message) == (403, "404", "Not Found")
