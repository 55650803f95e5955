"""A token request or login on the wire: what is known of it on its way, and its answer read with a cap.

httpx2 closes an auth flow without telling it what failed, so each request of a login carries a
:class:`Sending` that learns it; answers are read by the driver of the flow, on the event loop or
in a worker thread, no larger than :data:`~tskit.auth.protocol.MAX_LOGIN_ANSWER`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpcore2
import httpx2

from tskit._config import LOGIN_PATH
from tskit._errors import Reason, Remedy, RequestTimeout, TransportError
from tskit._transport import ON_TRANSPORT_ERROR
from tskit.auth import protocol

T = TypeVar("T")
#: Reads an answer's body (capped for a login's); given by the driver of the flow.
Reader = Callable[[httpx2.Response, bool], Awaitable[None]]


async def off_loop(call: Callable[[], T]) -> T:
    """Run blocking ``call`` in a worker thread; a cancelled caller leaves it to finish there."""
    job = asyncio.get_running_loop().run_in_executor(None, call)
    return await asyncio.shield(job)


class Sending:
    """What is known of a token request or login on its way, whoever drives the flow.

    httpx2 closes an auth flow without telling it what failed, so the request tells: tskit's
    transport hands it the exception (:data:`~tskit._transport.ON_TRANSPORT_ERROR`); httpx2's
    connection pool traces whether its headers started to go out (the ``trace`` extension);
    any transport reads its body once it took the request.
    """

    def __init__(self, request: httpx2.Request, *, blocking: bool) -> None:
        self.failure: BaseException | None = None
        self.traced = self.headers_sent = self.body_read = False
        self._method, self._path = request.method, request.url.path
        #: The step of httpx2's connection pool that failed, and its exception (httpcore2's).
        self.failed_step: tuple[str, BaseException | None] | None = None
        request.extensions[ON_TRANSPORT_ERROR] = self._failed
        request.extensions["trace"] = self._trace if blocking else self._atrace
        request.stream = _Tracked(request.stream, self)

    def _failed(self, problem: BaseException) -> None:
        self.failure = problem

    def _trace(self, name: str, info: dict[str, Any]) -> None:
        self.traced = True
        if "send_request_headers" in name:
            self.headers_sent = True
        if name.endswith(".failed") and self.failed_step is None:
            problem = info.get("exception")
            self.failed_step = (name, problem if isinstance(problem, BaseException) else None)

    async def _atrace(self, name: str, info: dict[str, Any]) -> None:
        self._trace(name, info)

    def reached(self) -> bool:
        """Whether the request may have reached the server (then a login's answer may have been lost)."""
        return self.headers_sent if self.traced else self.body_read

    def error(self, timeout: str) -> TransportError:
        """The error of this request, which failed below HTTP without its transport saying how.

        Args:
            timeout: How long tskit waited, in words, for a timeout's message.
        """
        step, problem = self.failed_step or ("", None)
        text = f" ({problem or step})" if step else ""
        timed_out = isinstance(problem, httpcore2.TimeoutException)
        if not self.reached():
            if timed_out:
                return RequestTimeout(f"could not connect within {timeout}", method=self._method, path=self._path)
            return TransportError(f"could not connect{text}", method=self._method, path=self._path)
        if timed_out:
            return RequestTimeout(f"no answer within {timeout}", method=self._method, path=self._path)
        return TransportError(f"the connection was dropped{text}", method=self._method, path=self._path)


class _Tracked(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A request body that notes when a transport starts reading it."""

    def __init__(self, inner: Any, sending: Sending) -> None:
        self._inner, self._sending = inner, sending

    def __iter__(self) -> Any:
        self._sending.body_read = True
        yield from self._inner

    async def __aiter__(self) -> Any:
        self._sending.body_read = True
        async for chunk in self._inner:
            yield chunk


class TooLarge(Exception):
    """An answer to a token request or login is larger than :data:`~tskit.auth.protocol.MAX_LOGIN_ANSWER`."""


class CappedStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """An answer's byte stream that refuses to go past ``limit`` bytes (the answer of a token request or login)."""

    def __init__(self, inner: Any, limit: int = protocol.MAX_LOGIN_ANSWER) -> None:
        self._inner, self._limit = inner, limit

    def __iter__(self) -> Any:
        size = 0
        for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                raise TooLarge
            yield chunk

    async def __aiter__(self) -> Any:
        size = 0
        async for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                raise TooLarge
            yield chunk

    def close(self) -> None:
        """Close the answer's stream."""
        self._inner.close()

    async def aclose(self) -> None:
        """Close the answer's stream."""
        await self._inner.aclose()


async def read_async(response: httpx2.Response, login: bool) -> None:
    """Read an answer on the event loop; a token or login answer no larger than the cap."""
    if login:
        response.stream = CappedStream(response.stream)
    try:
        await response.aread()
    except TooLarge:
        await response.aclose()
        raise


async def read_blocking(response: httpx2.Response, login: bool) -> None:
    """Read an answer of a blocking ``httpx2.Client`` in a worker thread; a login answer no larger than the cap."""
    if login:
        response.stream = CappedStream(response.stream)

    def read() -> None:
        try:
            response.read()
        except TooLarge:
            response.close()
            raise

    await off_loop(read)


def within(extensions: dict[str, Any], what: str, deadline: float | None, path: str = LOGIN_PATH) -> dict[str, Any]:
    """``extensions`` with httpx2 timeouts no longer than what is left until ``deadline``.

    Raises:
        RequestTimeout: Nothing is left: ``what`` is not sent.
    """
    if deadline is None:
        return extensions
    left = deadline - time.monotonic()
    if left <= 0:
        error = RequestTimeout(f"the call's timeout ran out before {what} was sent", method="POST", path=path)
        error.reason, error.remedy = Reason.TIMEOUT, Remedy("longer-timeout")
        raise error
    extensions["timeout"] = {"connect": left, "read": left, "write": left, "pool": left}
    return extensions
