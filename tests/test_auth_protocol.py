"""The login protocol alone: requests built and answers read, with no I/O."""

from __future__ import annotations

import json

import pytest

import tskit
from tskit._secret import Secret
from tskit.auth import protocol
from tskit.auth.protocol import Verdict

CREDENTIALS = tskit.Credentials("app-key", "app-secret", "someone", "pass-word")


@pytest.mark.parametrize(
    ("status", "code", "token_request", "expected"),
    [
        (401, "invalid_client", True, Verdict.REFUSED),
        (400, "invalid_request", True, Verdict.PASSING),  # a token request is refused only by invalid_client
        (429, "", True, Verdict.THROTTLED),
        (400, "UnifiedWebService.REQUEST_FAILED.Login.Failed", False, Verdict.REFUSED),
        (200, "Login.Failed", False, Verdict.REFUSED),  # the code decides, whatever the status
        (403, "UWS.UserLocked", False, Verdict.LOCKED),
        (429, "", False, Verdict.THROTTLED),
        (503, "900803", False, Verdict.THROTTLED),  # the gateway's throttle
        (401, "900901", False, Verdict.PASSING),  # the gateway's bad bearer judged no user
        (408, "", False, Verdict.PASSING),
        (502, "", False, Verdict.PASSING),
        (400, "", False, Verdict.UNCERTAIN),  # Verizon documents no answer to a wrong password
        (401, "REQUEST_FAILED.Unknown", False, Verdict.UNCERTAIN),
    ],
)
def test_an_answer_gets_its_verdict(status: int, code: str, token_request: bool, expected: Verdict) -> None:
    assert protocol.verdict(status, code, token_request=token_request) is expected
    assert protocol.is_refusal(expected) is (expected in (Verdict.REFUSED, Verdict.LOCKED))


def test_the_token_request_and_login_are_built_as_thingspace_documents() -> None:
    token = protocol.token_request("https://ts.example", CREDENTIALS, {protocol.LOGIN_EXTENSION: True})
    assert (token.method, str(token.url)) == ("POST", "https://ts.example/api/ts/v1/oauth2/token")
    assert token.headers["Authorization"].startswith("Basic ") and token.content == b"grant_type=client_credentials"
    login = protocol.login_request("https://ts.example", CREDENTIALS, Secret("tok-1"), {})
    assert (login.method, login.url.path) == ("POST", "/api/m2m/v1/session/login")
    assert login.headers["Authorization"] == "Bearer tok-1"
    assert json.loads(login.content) == {"username": "someone", "password": "pass-word"}
    assert token.headers["Accept-Encoding"] == login.headers["Accept-Encoding"] == "identity"


def test_answers_are_read_into_a_token_or_a_session_or_nothing() -> None:
    assert protocol.json_object(b"<html>") is None and protocol.json_object(b"[1]") is None
    token = protocol.token_of({"access_token": "abc", "expires_in": 120})
    assert token is not None and token[0].reveal() == "abc" and token[1] == 120.0
    assert protocol.token_of({"access_token": "abc", "expires_in": True}) is not None  # a bad lifetime: one hour
    assert protocol.token_of({"access_token": "abc", "expires_in": -5}) == (Secret("abc"), 3600.0)
    assert protocol.token_of({"expires_in": 120}) is None
    session = protocol.session_of({"sessionToken": "s-1"})
    assert session is not None and session.reveal() == "s-1"
    assert protocol.session_of({"sessionToken": ""}) is None


def test_what_an_answer_to_a_call_says_is_stale() -> None:
    expired = json.dumps({"errorCode": "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"}).encode()
    assert protocol.stale(200, b"[]") is None
    assert protocol.stale(400, expired) == "login" and protocol.session_expired(400, expired)
    assert protocol.stale(401, json.dumps({"fault": {"code": "900901"}}).encode()) == "token"
    assert protocol.stale(403, b"{}") == "login" and not protocol.session_expired(403, b"{}")


def test_renewal_and_throttle_waits() -> None:
    assert protocol.renewal(1000.0, 3600.0, 60.0, same=False) == 940.0
    assert protocol.renewal(1000.0, 60.0, 60.0, same=False) == 970.0  # half-way through a short lifetime
    assert protocol.renewal(1000.0, 3600.0, 60.0, same=True) == 1000.0  # the same token back: use it to its end
    assert protocol.throttle_wait(0.0, 1) == protocol.MIN_THROTTLE_WAIT
    assert protocol.throttle_wait(None, 2) == 2 * protocol.COOLDOWN
    assert protocol.throttle_wait(None, 50) == protocol.MAX_COOLDOWN
