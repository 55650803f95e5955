"""One call over HTTP within its deadline, tried again as the retry policy allows: where tskit talks HTTP.

The call's deadline covers everything it waits for: login waits, lock waits, the login itself,
every try and the sleeps between them. A register or deregister is tried again here only when it
cannot have reached ThingSpace (connection refused, 429); any other failure goes up to the
confirmation by listing (``tskit._confirm``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx2

from tskit._errors import RequestTimeout, ThingSpaceError, error_from_response
from tskit._retry import RetryPolicy
from tskit._transport import as_tskit_error
from tskit.auth import CALL_DEADLINE

logger = logging.getLogger("tskit.http")

#: Verizon's pages require it on every call.
_HEADERS = {"Content-Type": "application/json"}


def with_note(error: ThingSpaceError, note: str) -> ThingSpaceError:
    """``error``, with ``note`` added (shown under its message)."""
    error.add_note(note)
    return error


def request_timeout(seconds: float) -> httpx2.Timeout:
    """httpx2's timeout of ``seconds`` for each of connect, read, write and pool.

    Given all four, httpx2 skips its runtime check that a single value is a number (a Protocol
    ``isinstance``, 10-17 µs per request); a float passed as ``timeout=`` would pay it every time.
    """
    return httpx2.Timeout(connect=seconds, read=seconds, write=seconds, pool=seconds)


async def send(
    http: httpx2.AsyncClient,
    method: str,
    url: str,
    path: str,
    *,
    timeout: float,
    retry: RetryPolicy | None,
    login_secrets: Callable[[], tuple[str, ...]],
    json_body: dict[str, str] | None = None,
    extra_secrets: tuple[str, ...] = (),
) -> httpx2.Response:
    """Send one call, with retries, within ``timeout`` seconds from now.

    Args:
        http: The client of the running event loop.
        method: The HTTP method.
        url: The absolute URL (httpx2 then parses it once instead of merging it with a base).
        path: Its path, as errors and logs name the call.
        timeout: Seconds the whole call may take.
        retry: The retry policy, or ``None`` to send once.
        login_secrets: The login secrets held when an error is built (a login may happen within).
        json_body: The JSON body, if any.
        extra_secrets: More secrets to scrub from error texts (listener passwords).

    Returns:
        The successful response.

    Raises:
        ThingSpaceError: The call failed, and the retry policy or the deadline allows no other try.
    """
    deadline = time.monotonic() + timeout
    token = CALL_DEADLINE.set(deadline)
    try:
        return await _send_until(
            http, method, url, path, deadline, timeout, retry, login_secrets, json_body, extra_secrets
        )
    finally:
        CALL_DEADLINE.reset(token)


async def _send_until(
    http: httpx2.AsyncClient,
    method: str,
    url: str,
    path: str,
    deadline: float,
    timeout: float,
    retry: RetryPolicy | None,
    login_secrets: Callable[[], tuple[str, ...]],
    json_body: dict[str, str] | None,
    extra_secrets: tuple[str, ...],
) -> httpx2.Response:
    idempotent = method == "GET"
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        failure: ThingSpaceError
        retry_after: float | None = None
        left = deadline - time.monotonic()
        if left <= 0:
            raise RequestTimeout(
                f"the call's timeout of {timeout:g} s ran out before try {attempt}", method=method, path=path
            )
        try:
            response = await http.request(method, url, json=json_body, headers=_HEADERS, timeout=request_timeout(left))
        except ThingSpaceError:
            raise  # from the auth flow: a login's failure, handed to every waiter and never retried
        except (httpx2.HTTPError, httpx2.StreamError, httpx2.InvalidURL) as exc:  # all below HTTP
            failure, reached = as_tskit_error(exc, method=method, path=path, timeout=f"{timeout:g} s")
        else:
            logger.debug(
                "%s %s -> %s in %.1f ms", method, path, response.status_code, (time.perf_counter() - started) * 1e3
            )
            if response.is_success:
                return response
            answered = error_from_response(
                response.status_code,
                response.content,
                method=method,
                path=path,
                retry_after=response.headers.get("Retry-After"),
                reason=response.reason_phrase,
                secrets=(*login_secrets(), *extra_secrets),
            )
            if retry is None or response.status_code not in retry.statuses:
                raise answered
            failure, retry_after = answered, answered.retry_after
            reached = response.status_code != 429  # a 429 is refused before any work is done
        logger.info("%s %s failed (try %d): %s", method, path, attempt, failure)
        if retry is None:
            raise failure
        if not idempotent and reached:
            raise failure
        delay = retry.delay(attempt, retry_after)
        if delay is None:
            raise failure
        left = deadline - time.monotonic()
        if delay >= left:  # the wait alone would outlast the call's timeout: fail now, saying so
            wait = "ThingSpace's Retry-After" if retry_after is not None else "The wait before another try"
            left_text = f"{max(left, 0):.1f} s left of timeout={timeout:g}"
            raise with_note(failure, f"{wait} of {delay:g} s is longer than the {left_text}")
        await asyncio.sleep(delay)
