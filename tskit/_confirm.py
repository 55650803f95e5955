"""A register or deregister sent until a clear answer, or a fresh listing, shows it took effect.

When an attempt's outcome is uncertain (timeout, dropped answer, 5xx, an answer that is not the
documented one), a listing decides; the request is sent again only after a listing showed that it
had not taken effect, as the retry policy allows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

import httpx2

from tskit._errors import (
    ApiError,
    AuthenticationError,
    ThingSpaceError,
    TransportError,
    UnexpectedResponseError,
    excerpt,
)
from tskit._models import Callback, CallbackActionResult
from tskit._retry import RetryPolicy
from tskit._sending import with_note

logger = logging.getLogger("tskit.http")

#: 4xx answers to a resent register after which a listing decides (the first attempt may have applied).
_CHECK_STATUSES: Final = frozenset({400, 404, 409, 410})
#: Words of error codes that blame the input itself (then no listing can make the call succeed).
_INPUT_WORDS: Final = ("servicename", "accountname", "accountnotfound", "account_not_found")
#: Note of a failed mutation a listing does not show: it may also have applied and been overwritten since.
_NOT_SHOWN: Final = (
    "the listing does not show it now: it did not take effect, or another caller changed the listener since"
)
# Key of the fingerprints a register compares passwords by; random per process, never stored.
_COMPARE_KEY: Final = secrets.token_bytes(32)

#: Whether a listing shows the account as a mutation asked.
Holds = Callable[[list[Callback]], bool]


def unexpected(response: httpx2.Response, problem: str) -> UnexpectedResponseError:
    """The error of an answer that is not the documented one."""
    return UnexpectedResponseError(
        problem, status_code=response.status_code, method=response.request.method, path=response.request.url.path
    )


def registered_as(service: str, url: str, username: str, password: str) -> Holds:
    """Whether a listing shows ``service`` registered with exactly this URL, username and password.

    The comparison keeps no copy of the password: it compares keyed digests.
    """
    wanted = _password_fingerprint(password)

    def holds(callbacks: list[Callback]) -> bool:
        return any(
            cb.service_name == service
            and cb.url == url
            and cb.username == username
            and cb.password_listed  # a listing without the password cannot confirm it
            and hmac.compare_digest(_password_fingerprint(cb.password.reveal()), wanted)
            for cb in callbacks
        )

    return holds


def not_registered(service: str) -> Holds:
    """Whether a listing shows no listener of ``service``."""

    def holds(callbacks: list[Callback]) -> bool:
        return all(cb.service_name != service for cb in callbacks)

    return holds


async def send_confirmed(
    method: str,
    path: str,
    account: str,
    service: str,
    holds: Holds,
    *,
    send: Callable[[], Awaitable[httpx2.Response]],
    list_account: Callable[[], Awaitable[list[Callback]]],
    retry: RetryPolicy,
    secrets: Callable[[], tuple[str, ...]],
) -> CallbackActionResult:
    """Send a register or deregister until a clear answer or a fresh listing shows it took effect.

    Args:
        method: ``"POST"`` (register) or ``"DELETE"`` (deregister).
        path: The request's path, as the log names the call.
        account: The billing account.
        service: The service.
        holds: Whether a listing shows the account as asked.
        send: Sends the request once (with the retries that cannot repeat its effect).
        list_account: Reads one listing of the account.
        retry: The retry policy.
        secrets: Every secret known now, to keep out of error texts.

    Raises:
        ThingSpaceError: ThingSpace may not hold what was asked (see the error's notes).
    """
    sends = 0
    answered_absent = False  # ThingSpace's answer to the first attempt: the service had no listener
    while True:
        sends += 1
        failure: ThingSpaceError
        retry_after: float | None = None
        try:
            response = await send()
        except AuthenticationError:
            raise  # the login was refused: no listing can be read either
        except ApiError as exc:
            if not _may_hold_already(exc, method, resent=sends > 1):
                raise  # ThingSpace refused it: nothing changed
            answered_absent = sends == 1 and "notregistered" in exc.error_code.casefold()
            failure, retry_after = exc, exc.retry_after
        except (TransportError, UnexpectedResponseError) as exc:
            failure = exc  # it may or may not have reached ThingSpace
        else:
            problem = _action_problem(response, account, service, secrets())
            if not problem:
                return CallbackActionResult(
                    account,
                    service,
                    outcome="sent" if sends == 1 else "resent",
                    was_registered=True if method == "DELETE" else None,
                )
            failure = unexpected(response, problem)
        logger.info("%s %s: outcome uncertain (%s); listing the account to decide", method, path, failure)
        callbacks = await _list_to_decide(list_account, retry, failure)
        if holds(callbacks) and method == "DELETE":
            # Absence is what a faulty answer (an empty body, "[]") also looks like: a second,
            # independent listing must agree before a deregister counts as done.
            callbacks = await _list_to_decide(list_account, retry, failure)
        if holds(callbacks):
            logger.info("%s %s: a listing shows it took effect", method, path)
            had = False if method == "DELETE" and answered_absent and sends == 1 else None
            return CallbackActionResult(account, service, outcome="confirmed", was_registered=had)
        delay = retry.delay(sends, retry_after)
        if delay is None:
            failure.may_have_applied = True  # sent, and no listing shows it: it may have applied since
            raise with_note(failure, _NOT_SHOWN)
        await asyncio.sleep(delay)


async def _list_to_decide(
    list_account: Callable[[], Awaitable[list[Callback]]], retry: RetryPolicy, failure: ThingSpaceError
) -> list[Callback]:
    """A fresh listing, tried again also after a 4xx (e.g. a session that expired twice in a row).

    When no listing can be read, ``failure`` is raised with a note that the outcome is unknown.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await list_account()
        except ApiError as exc:
            delay = retry.delay(attempt, exc.retry_after)
            if isinstance(exc, AuthenticationError) or exc.status_code >= 500 or delay is None:
                break  # (5xx were retried inside already)
            await asyncio.sleep(delay)
        except ThingSpaceError:
            break
    failure.may_have_applied = True  # no listing could say whether the change took effect
    raise with_note(failure, "the outcome is unknown: list the account's callbacks to see") from None


def _action_problem(response: httpx2.Response, account: str, service: str, known: tuple[str, ...]) -> str:
    """What is odd about a 2xx answer to a register or deregister, or ``""`` when it is as documented.

    An empty, partial or foreign answer does not say the change was refused: the caller decides
    by a listing.
    """
    try:
        data = json.loads(response.content)
    except ValueError:
        return f"body is not JSON: {excerpt(response.content, known)!r}"
    if not isinstance(data, dict):
        return "expected a JSON object with accountName and serviceName"
    try:
        result = CallbackActionResult.from_wire(data)
    except ValueError as exc:
        return str(exc)
    if (result.account_name, result.service_name) != (account, service):
        return "the answer names another account or service"
    return ""


def _may_hold_already(error: ApiError, method: str, *, resent: bool) -> bool:
    """Whether what was asked may hold despite this error answer, so that a listing must decide.

    A 5xx may come after the change was applied. An HTTP stack may resend a DELETE on its own
    (DELETE is idempotent in HTTP) after its first attempt took effect and the answer was lost, so
    any refusal of a deregister may follow a success: "not registered", an expired session, a 429.
    Only a refusal that blames the input (an invalid service name, an unknown account) is final.
    After an uncertain register was resent, a refusal may likewise come from the first attempt's
    effect (e.g. "already registered").
    """
    if error.status_code >= 500:
        return True
    if method == "DELETE":
        code = error.error_code.casefold()
        return not any(word in code for word in _INPUT_WORDS)
    return resent and error.status_code in _CHECK_STATUSES


def _password_fingerprint(password: str) -> bytes:
    """A keyed digest of a listener password, so that a comparison holds no copy of it."""
    return hmac.new(_COMPARE_KEY, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
