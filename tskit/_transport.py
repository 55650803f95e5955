"""The HTTP transport for real networks: aiohttp under httpx's API (httpx-aiohttp), errors made precise.

Why not httpx's own pool: at 20 and more concurrent requests it costs several milliseconds of CPU
per request on a 2-core machine (httpx issue 3215); an audit of 1,000 accounts at concurrency 32
took 4x its floor with it and 1.1x with aiohttp (``benchmarks/README.md``).

Why a subclass: httpx-aiohttp 0.2 maps every ``aiohttp.ClientConnectionError`` to
``httpx.ConnectTimeout``, including a connection dropped after the request was sent. tskit decides
whether resending a register or deregister is safe from that distinction, so each aiohttp error
is mapped again here to the httpx error that says whether the request may have reached the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport as _AiohttpTransport


def precise_error(exc: httpx.TransportError, request: httpx.Request) -> httpx.TransportError:
    """The httpx error that says truthfully whether the request may have reached the server."""
    cause = exc.__cause__ or exc
    message = str(cause) or type(cause).__name__
    kind: type[httpx.TransportError]
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout  # no connection was made: nothing was sent
    elif isinstance(cause, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError  # refused, unreachable, DNS: nothing was sent
    elif isinstance(cause, aiohttp.ServerTimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(cause, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.ProxyError):
        return exc
    else:
        kind = httpx.ReadError  # anything else: assume the request may have arrived
    return kind(message, request=request)


class _PreciseStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._stream, self._request = stream, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except httpx.TransportError as exc:
            raise precise_error(exc, self._request) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


def environment_proxy(url: str) -> httpx.Proxy | None:
    """The proxy the environment sets for ``url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``…).

    Resolved once per client, as httpx does, rather than by aiohttp on every request
    (``trust_env``), which doubled the client's CPU time per request in the audit benchmark.
    """
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(url)
    if not parts.hostname or proxy_bypass(parts.hostname):
        return None
    proxies = getproxies()
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    return httpx.Proxy(chosen) if chosen else None


class AiohttpTransport(_AiohttpTransport):
    """httpx-aiohttp's transport, with errors that tell whether a request may have arrived.

    Like any aiohttp session it belongs to the event loop it was first used on. Give it
    ``proxy=environment_proxy(url)`` to honour the environment's proxy settings.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request through aiohttp."""
        try:
            response = await super().handle_async_request(request)
        except httpx.TransportError as exc:
            raise precise_error(exc, request) from exc
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _PreciseStream(response.stream, request)
        return response
