"""ThingSpace's two-step login, without I/O: the requests it sends and what its answers mean.

Every Connectivity Management call needs an OAuth2 bearer token (client credentials, valid one
hour) *and* an M2M session token from ``POST /api/m2m/v1/session/login`` (expires after 20 minutes
without use). This module builds the token request and the login, and reads an answer into a
grant or a :class:`Verdict`: what the answer means for the credentials and for the user's
lockout (ThingSpace locks a user after five failed logins in a row).
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, Final, Literal

import httpx2

from tskit._config import LOGIN_PATH, TOKEN_PATH, Credentials
from tskit._errors import parse_error_body
from tskit._secret import Secret

#: Seconds during which new calls fail at once after a failed (not refused) login.
COOLDOWN: Final = 2.0
#: Longest ``Retry-After`` of a failed login that the cooldown follows, and the longest wait any
#: throttle, recorded by any process, imposes.
MAX_COOLDOWN: Final = 60.0
#: Shortest wait after a throttle, whatever ``Retry-After`` says (``0`` would send logins back to back).
MIN_THROTTLE_WAIT: Final = 1.0
#: Largest answer to a token request or login that is read (a real one is well under 1 kB).
MAX_LOGIN_ANSWER: Final = 1_000_000
#: The request extension that marks a token request or login.
LOGIN_EXTENSION: Final = "tskit.login"

#: OAuth ``error`` values that mean the application key or secret is wrong.
TOKEN_REFUSALS: Final = frozenset({"invalid_client"})
#: Parts of ThingSpace's login error codes that mean a wrong user/password or a locked user.
_LOGIN_REFUSALS: Final = ("login.failed", "userlocked", "user.locked", "locked")
#: Gateway codes that are passing: throttled (900800…900807).
TRANSIENT_FAULTS: Final = frozenset({"900800", "900801", "900802", "900803", "900804", "900805", "900806", "900807"})
#: The API gateway's own fault codes (900800 throttled, 900901 bad bearer, 900906 no such
#: resource…): the gateway answered, and the login behind it never judged a user.
_GATEWAY_FAULT: Final = re.compile(r"9\d{5}")


class Verdict(StrEnum):
    """What a token request or login that did not give a grant means."""

    #: The credentials are wrong (OAuth ``invalid_client``, a login-failed code): never sent again.
    REFUSED = "refused"
    #: ThingSpace locked the user: never sent again until support unlocks it.
    LOCKED = "locked"
    #: ThingSpace asked to wait (429, the gateway's ``9008xx``): waited out, never a failure.
    THROTTLED = "throttled"
    #: Another 4xx: Verizon documents no answer to a wrong password, so it may be one; it counts.
    UNCERTAIN = "uncertain"
    #: Nothing was judged (408, 5xx, a gateway fault, a token request's passing failure).
    PASSING = "passing"
    #: The request never left (no connection): it never counts as a failed login.
    NOT_REACHED = "not-reached"
    #: The request may have arrived but its answer was lost (a read timeout, a dropped connection).
    NO_ANSWER = "no-answer"
    #: A 2xx answer that is not a token or session, or an answer too large to be one.
    UNUSABLE = "unusable"


def is_token_request(path: str) -> bool:
    """Whether ``path`` is the OAuth token request's."""
    return path.endswith(TOKEN_PATH)


def verdict(status: int, code: str, *, token_request: bool) -> Verdict:
    """What a non-2xx answer to a token request or login means.

    * refused or locked: the credentials are wrong or the user is locked (OAuth ``invalid_client``;
      a login-failed or user-locked code, whatever the status);
    * throttled: 429, or the gateway's ``9008xx``;
    * uncertain: any other 4xx answer to the login, with or without a code;
    * passing: 408 and 5xx (a server error is not a verdict on a password), the gateway's own
      faults, a failed token request that is not ``invalid_client``.
    """
    if token_request:
        if code in TOKEN_REFUSALS:
            return Verdict.REFUSED
    elif any(part in code.lower() for part in _LOGIN_REFUSALS):
        return Verdict.LOCKED if "locked" in code.lower() else Verdict.REFUSED
    if status == 429 or code in TRANSIENT_FAULTS:
        return Verdict.THROTTLED
    if token_request or status in (408,) or status >= 500 or _GATEWAY_FAULT.fullmatch(code):
        return Verdict.PASSING
    return Verdict.UNCERTAIN


def is_refusal(found: Verdict) -> bool:
    """Whether a verdict refuses the credentials (remembered: never sent again)."""
    return found in (Verdict.REFUSED, Verdict.LOCKED)


def throttle_wait(retry_after: float | None, throttles: int) -> float:
    """Seconds to wait after the ``throttles``-th throttle in a row: ``Retry-After``, or a doubling cooldown.

    At least :data:`MIN_THROTTLE_WAIT`, at most :data:`MAX_COOLDOWN`.
    """
    asked = retry_after if retry_after is not None else COOLDOWN * 2 ** max(0, min(throttles - 1, 6))
    return min(max(asked, MIN_THROTTLE_WAIT), MAX_COOLDOWN)


def token_request(base_url: str, credentials: Credentials, extensions: dict[str, Any]) -> httpx2.Request:
    """The OAuth client-credentials token request."""
    return httpx2.Request(
        "POST",
        base_url + TOKEN_PATH,
        headers={
            "Authorization": f"Basic {credentials.basic_authorization()}",
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # the answer's size is capped as sent
        },
        data={"grant_type": "client_credentials"},
        extensions=extensions,
    )


def login_request(base_url: str, credentials: Credentials, token: Secret, extensions: dict[str, Any]) -> httpx2.Request:
    """The M2M session login of the user, with the bearer ``token``."""
    return httpx2.Request(
        "POST",
        base_url + LOGIN_PATH,
        headers={
            "Authorization": f"Bearer {token.reveal()}",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        },
        json={"username": credentials.username, "password": credentials.password.reveal()},
        extensions=extensions,
    )


def json_object(body: bytes) -> dict[str, Any] | None:
    """An answer's JSON object, or ``None`` when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def token_of(data: dict[str, Any]) -> tuple[Secret, float] | None:
    """The access token of a token answer and its lifetime in seconds (1 hour when not usable), if any."""
    raw, expires_in = data.get("access_token"), data.get("expires_in", 3600)
    if not isinstance(raw, str) or not raw:
        return None
    if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
        expires_in = 3600
    return Secret(raw), float(expires_in)


def session_of(data: dict[str, Any]) -> Secret | None:
    """The session token of a login answer, if any."""
    raw = data.get("sessionToken")
    return Secret(raw) if isinstance(raw, str) and raw else None


def renewal(expires_at: float, lifetime: float, margin: float, *, same: bool) -> float:
    """When to ask for a new token, given one that expires at ``expires_at``.

    ``margin`` before its end, or half-way through a lifetime shorter than twice the margin. A
    token handed back unchanged (ThingSpace answers with the same token, its ``expires_in``
    counted down, until it expires) is used until it expires: asking again would bring it back
    again, once per call.
    """
    if same:
        return expires_at
    return expires_at - min(margin, lifetime / 2)


def stale(status: int, body: bytes) -> Literal["token", "login"] | None:
    """What an answer to a call says is no longer valid.

    Returns:
        ``None`` when the answer stands, ``"token"`` when only the bearer token was refused (the
        gateway's ``900901``), ``"login"`` when the session (or both) must be renewed.
    """
    expired_session = (
        status in (400, 401, 403)
        and b"SessionToken" in body  # cheap test first; then only the error code counts
        and ".SessionToken." in parse_error_body(body)[0]
    )
    if status not in (401, 403) and not expired_session:
        return None
    bearer_only = not expired_session and status == 401 and parse_error_body(body)[0] == "900901"
    return "token" if bearer_only else "login"


def session_expired(status: int, body: bytes) -> bool:
    """Whether an answer says the session token expired (then the bearer token is kept)."""
    return status in (400, 401, 403) and ".SessionToken." in parse_error_body(body)[0]
