"""The HTTP client for real networks, on httpx2's own connection pool, and its errors in tskit's terms.

httpx2's pool (httpcore2) fixed the CPU cost per concurrent request that once made tskit use
aiohttp underneath (``benchmarks/README.md``). Three choices are made here, in one place:

* nothing below tskit ever sends a request again: the pool is built with ``retries=0`` and
  httpcore2 only ever reuses a connection before a byte of the request went out, so a register
  or deregister whose answer was lost is resent only if tskit decides to (``tskit._client``);
* proxies, limits and timeouts are httpx2's own, as it documents them (``HTTPS_PROXY``,
  ``NO_PROXY``, :class:`httpx2.Limits`), except that a loopback base URL (a local simulator) never
  goes through a proxy: the client secret would travel to the proxy in clear text;
* every error httpx2 (or anything under it) raises becomes a tskit error that says whether the
  request may have reached the server, so no third-party exception reaches a caller.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx2

from tskit._addresses import is_loopback_host
from tskit._errors import ConfigurationError, RequestTimeout, TransportError

#: A request extension: called with what the transport raised for that request, before it goes up.
ON_TRANSPORT_ERROR = "tskit.on_transport_error"


def make_client(
    base_url: str,
    *,
    auth: httpx2.Auth,
    transport: httpx2.AsyncBaseTransport | None,
    timeout: float | httpx2.Timeout,
    limits: httpx2.Limits,
    headers: Mapping[str, str],
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` for ``base_url``: no redirects, no resend, no proxy for loopback.

    Args:
        base_url: The ThingSpace host root.
        auth: The auth flow every request goes through.
        transport: A transport to use instead of the network (the embedded simulator's).
        timeout: httpx2's timeout: seconds for each of connect, read, write and pool, or a
            :class:`httpx2.Timeout`.
        limits: httpx2's connection pool limits.
        headers: Headers sent with every request.
    """
    host = urlsplit(base_url).hostname or ""
    # A loopback base URL never goes through a proxy: the environment's proxies are not even read.
    # Otherwise, with transport=None, httpx2 builds its pool from ``limits`` (``retries=0``, its
    # default: no resend) and reads the proxies of the environment, as it documents.
    trust_env = transport is not None or not is_loopback_host(host)
    if transport is not None:
        transport = _Reporting(transport)
    try:
        return httpx2.AsyncClient(
            base_url=base_url,
            auth=auth,
            transport=transport,
            timeout=timeout,
            limits=limits,
            headers=dict(headers),
            follow_redirects=False,
            trust_env=trust_env,
        )
    except (ImportError, ValueError, httpx2.InvalidURL) as problem:  # a proxy variable httpx2 cannot use
        names = [name for name in os.environ if name.lower() in _PROXY_VARIABLES and os.environ[name]]
        raise ConfigurationError(
            " / ".join(names) or "proxy settings",
            f"cannot be used ({type(problem).__name__}: {problem})",
            "an http:// or https:// proxy URL (socks5:// needs `pip install httpx2[socks]`), or unset it",
        ) from None


class _Reporting(httpx2.AsyncBaseTransport):
    """A given transport that tells a request's :data:`ON_TRANSPORT_ERROR` hook what it raised, if it asks."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except BaseException as problem:
            hook = request.extensions.get(ON_TRANSPORT_ERROR)
            if callable(hook):
                hook(problem)
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


_PROXY_VARIABLES = frozenset({"all_proxy", "http_proxy", "https_proxy", "no_proxy"})


def as_tskit_error(exc: BaseException, *, method: str, path: str, timeout: str) -> tuple[TransportError, bool]:
    """Tskit's error for a failure below HTTP, and whether the request may have reached the server.

    Args:
        exc: What httpx2 (or the code under it) raised.
        method: The request's method.
        path: The request's path.
        timeout: How long tskit waited, in words, for the timeout message.
    """
    if isinstance(exc, httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return RequestTimeout(f"could not connect within {timeout}", method=method, path=path), False
    if isinstance(exc, httpx2.TimeoutException):
        return RequestTimeout(f"no answer within {timeout}", method=method, path=path), True
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx2.ConnectError | httpx2.UnsupportedProtocol | httpx2.ProxyError):
        return TransportError(f"could not connect ({text})", method=method, path=path), False
    if isinstance(exc, httpx2.RemoteProtocolError | httpx2.ReadError | httpx2.WriteError):
        return TransportError(f"the connection was dropped ({text})", method=method, path=path), True
    if isinstance(exc, httpx2.DecodingError):
        return TransportError(f"the answer could not be decoded ({text})", method=method, path=path), True
    # Anything else (a malformed answer, an unexpected library error): the request may have arrived.
    return TransportError(f"no usable answer ({type(exc).__name__}: {text})", method=method, path=path), True
