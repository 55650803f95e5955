"""The simulator's HTTP answers and ThingSpace's three error shapes, with every error code in one table.

Verizon uses three bodies: ``{"errorCode", "errorMessage"}`` for Connectivity Management errors,
the WSO2 gateway's ``{"fault": {"code", "message", "description"}}``, and the OAuth token
endpoint's ``{"error", "error_description"}`` (``thingspace-api.md`` section 1.6). Every route
takes its codes from :class:`Code`, so the same problem has the same code on every route.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from tskit.simulator._facts import CM_PREFIX

JSON: Final = (("content-type", "application/json"),)


@dataclass(slots=True)
class Reply:
    """One HTTP answer of the simulator.

    Attributes:
        status: HTTP status.
        body: Body bytes (may be empty).
        headers: Header pairs.
        delay: Seconds to wait before answering.
        drop: Close the connection instead of answering.
    """

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop: bool = False


class Code:
    """Connectivity Management error codes (without the ``UnifiedWebService.`` prefix).

    The first group is documented by Verizon (Synchronous Error Messages page, via the reference);
    the second is the simulator's own: Verizon documents no code for these cases.
    """

    # documented
    REQUEST_UNDEFINED: Final = "INPUT_INVALID.RequestUndefined"
    INVALID_CHARACTER: Final = "INPUT_INVALID.Request.InvalidCharacter"
    SESSION_EXPIRED: Final = "REQUEST_FAILED.SessionToken.Expired"
    SESSION_MISSING: Final = "REQUEST_FAILED.SessionToken.Format"
    SESSION_INVALID: Final = "INPUT_INVALID.SessionToken.Invalid"
    ACCOUNT_NOT_FOUND: Final = "REQUEST_FAILED.AccountNotFound"
    ACCOUNT_NOT_YOURS: Final = "REQUEST_FAILED.AccountName"
    UNEXPECTED: Final = "REQUEST_FAILED.UnexpectedError"
    # the simulator's own
    LOGIN_FAILED: Final = "REQUEST_FAILED.Login.Failed"
    USER_LOCKED: Final = "REQUEST_FAILED.UserLocked"
    TOO_MANY_REQUESTS: Final = "REQUEST_FAILED.TooManyRequests"
    TOO_LARGE: Final = "INPUT_INVALID.RequestTooLarge"
    CONTENT_TYPE: Final = "INPUT_INVALID.Request.ContentType"
    SERVICE_UNDEFINED: Final = "INPUT_INVALID.ServiceName.Undefined"
    SERVICE_INVALID: Final = "INPUT_INVALID.ServiceName.Invalid"
    URL_INVALID: Final = "INPUT_INVALID.Url.Invalid"
    USERNAME_INVALID: Final = "INPUT_INVALID.Username.Invalid"
    PASSWORD_INVALID: Final = "INPUT_INVALID.Password.Invalid"
    ALREADY_REGISTERED: Final = "REQUEST_FAILED.CallbackAlreadyRegistered"
    NOT_REGISTERED: Final = "REQUEST_FAILED.CallbackNotRegistered"
    SANDBOX_ACCOUNT: Final = "REQUEST_FAILED.SandboxAccount"


def json_reply(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """A JSON answer."""
    return Reply(status, json.dumps(payload).encode(), JSON + headers)


def cm_error(status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """A Connectivity Management error: ``{"errorCode": "UnifiedWebService.<code>", "errorMessage": ...}``."""
    return json_reply(status, {"errorCode": f"{CM_PREFIX}.{code}", "errorMessage": message}, headers)


def gateway_fault(status: int, code: str, message: str, description: str) -> Reply:
    """A WSO2 gateway error: ``{"fault": {"code", "message", "description"}}``."""
    return json_reply(status, {"fault": {"code": code, "message": message, "description": description}})


def oauth_error(status: int, error: str, description: str) -> Reply:
    """An OAuth token endpoint error: ``{"error", "error_description"}``."""
    return json_reply(status, {"error": error, "error_description": description})


def missing_credentials(scheme: str) -> Reply:
    """The gateway's 401 for a request without the ``Authorization`` header it needs."""
    return gateway_fault(
        401,
        "900902",
        "Missing Credentials",
        "Required OAuth credentials not provided. Make sure your API invocation call has a header: "
        f'"Authorization: {scheme} ACCESS_TOKEN"',
    )


def invalid_credentials() -> Reply:
    """The gateway's 401 for a wrong or expired bearer token."""
    return gateway_fault(
        401,
        "900901",
        "Invalid Credentials",
        "Access failure for API: /m2m/v1, version: v1. Make sure you have given the correct access token",
    )


def no_resource() -> Reply:
    """The gateway's 400 for a path the API does not have."""
    return gateway_fault(
        400,
        "900906",
        "No matching resource found in the API for the given request",
        "Access failure for API: /m2m/v1, version: v1. Check the API documentation and add a proper "
        "REST resource path to the invocation URL",
    )


def not_found() -> Reply:
    """The 404 for anything outside the API's paths."""
    return Reply(404, b"The requested resource is not available", (("content-type", "text/plain"),))


def json_object(body: bytes) -> dict[str, Any] | None:
    """A request body as a JSON object, or ``None`` if it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
