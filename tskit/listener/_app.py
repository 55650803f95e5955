"""The callback listener as an ASGI application: what ThingSpace POSTs, checked, stored, acknowledged.

Only a 2xx tells ThingSpace a message arrived, and one answered otherwise may be lost for good, so:
every check runs before anything is stored; the 2xx goes out only after the message is committed;
a redelivery is acknowledged again (and counted) without being stored twice.

It faces the internet, so no body, however hostile, gets a 500: a malformed one gets 400 naming the
problem, wrong credentials 401, a source outside the allowlist 403, a body that does not arrive in
time 408, and a store that cannot write 503 (ThingSpace sends again).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import unquote

from tskit._addresses import is_loopback_host
from tskit._models import SERVICE_CATALOGUE
from tskit._serving import lifespan, read_body
from tskit.listener._checks import BadMessage, check, parse
from tskit.listener._outcomes import MessageRefused, StoreUnavailable
from tskit.listener._sources import Network, allowed
from tskit.listener._store import MessageStore
from tskit.listener._throttle import RefusalLog, Throttle

log = logging.getLogger("tskit.listener")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Which body key tells which service a message belongs to, when the URL path does not.
_SERVICE_KEYS = {
    "deviceResponse": "CarrierService",
    "niddResponse": "NiddService",
    "deviceUsageResponse": "DeviceUsage",
    "externalProvisioningChangesResponse": "ExternalProvisioningChanges",
    "smsResponse": "EnhancedConnectivityService",
}


def service_of(path: str, body: dict[str, Any]) -> str:
    """The service a message is for: the last path segment if it names one, else from the body."""
    last = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    if last in SERVICE_CATALOGUE:
        return last
    return next((service for key, service in _SERVICE_KEYS.items() if key in body), "")


async def _answer(
    send: Send, status: int, payload: dict[str, Any], *, close: bool = False, retry_after: int = 1
) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the body was not read to its end: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    if status in (429, 503):
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bytes(text: str) -> bytes:
    # surrogatepass: a hostile lone surrogate compares as unequal instead of raising
    return text.encode("utf-8", "surrogatepass")


class ListenerApp:
    """ASGI app that accepts ThingSpace callback messages.

    Args:
        store: Where accepted messages go.
        username: Expected ``username`` in each body (``None``: not checked).
        passwords: Accepted ``password`` values; more than one during a rotation, since ThingSpace
            keeps sending the old one for minutes after a re-registration. Empty: not checked.
        max_body: Largest body accepted, in bytes; larger ones get 413.
        delay: Seconds to wait before answering (to test senders' timeouts).
        body_timeout: Seconds the whole body may take to arrive; a slower one gets 408 and the
            connection is closed.
        allow_from: Networks allowed to POST (see ``tskit.listener.networks``); empty: any source.
        throttle: How sources that keep sending wrong credentials are slowed (default :class:`Throttle`'s).

    Refusals are logged in aggregate (:class:`RefusalLog`): the first of each source and status at
    once, then one line per 10 s with a count.
    """

    def __init__(
        self,
        store: MessageStore,
        *,
        username: str | None = None,
        passwords: Sequence[str] = (),
        max_body: int = 1024 * 1024,
        delay: float = 0.0,
        body_timeout: float = 10.0,
        allow_from: Sequence[Network] = (),
        throttle: Throttle | None = None,
    ) -> None:
        self.store = store
        self.username = username
        self.passwords = [_bytes(p) for p in passwords]
        self.max_body = max_body
        self.delay = delay
        self.body_timeout = body_timeout
        self.allow_from = tuple(allow_from)
        self.rejected = 0
        self.throttle = throttle or Throttle()
        self.refusals = RefusalLog(log)

    def _authorised(self, body: dict[str, Any]) -> bool:
        if self.username is not None:
            given = body.get("username")
            if not isinstance(given, str) or not hmac.compare_digest(_bytes(given), _bytes(self.username)):
                return False
        if self.passwords:
            given = body.get("password")
            if not isinstance(given, str):
                return False
            # compare with every accepted password, so timing does not say which one matched
            matches = [hmac.compare_digest(_bytes(given), p) for p in self.passwords]
            return any(matches)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._serve(scope, receive, tracked)
        except Exception:  # a bug must not become a traceback to the sender, nor a lost message
            log.exception("the listener failed on a request")
            if not started:
                await _answer(send, 503, {"error": "the listener could not handle the message"}, close=True)

    async def _refuse(
        self, send: Send, status: int, error: str, *, peer: str, close: bool = False, retry_after: int = 1
    ) -> None:
        """Answer a refused message, and log it in aggregate (status, reason, peer; never its body or credentials)."""
        self.rejected += 1
        self.refusals.refused(peer, status, error)
        await _answer(send, status, {"error": error}, close=close, retry_after=retry_after)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        peer = str(client[0]) if client else "an unknown peer"
        permitted = allowed(client[0] if client else None, self.allow_from)
        # health checks from this machine pass the allowlist: a monitor runs next to the listener
        health = scope["method"] == "GET" and scope["path"] in ("/health", "/healthz")
        if health and (permitted or is_loopback_host(peer)):
            problem = self.store.problem  # no paths nor database texts: those are in the log
            if problem:
                await _answer(send, 503, {"status": "failed", "error": problem})
            else:
                await _answer(send, 200, {"status": "ok"})
            return
        if not permitted:
            await self._refuse(send, 403, "this source address may not send callbacks here", close=True, peer=peer)
            return
        if scope["method"] != "POST":
            await _answer(send, 405, {"error": "callback messages are POSTed"}, close=True)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._refuse(send, 413, f"body larger than {self.max_body} bytes", close=True, peer=peer)
            return
        gone = False

        async def watched() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        try:
            async with asyncio.timeout(self.body_timeout):
                raw = await read_body(watched, self.max_body)
            if gone:  # the sender left, or its slow connection was closed for room: nobody to answer
                return
        except TimeoutError:
            late = f"the body did not arrive within {self.body_timeout:g} s"
            await self._refuse(send, 408, late, close=True, peer=peer)
            return
        if len(raw) > self.max_body:
            await self._refuse(send, 413, f"body larger than {self.max_body} bytes", close=True, peer=peer)
            return
        try:
            body = parse(raw)
        except BadMessage as error:
            await self._refuse(send, 400, str(error), peer=peer)
            return
        # Checked first, so that the right credentials are never kept waiting nor refused, whatever
        # else comes from the same address (behind a reverse proxy, every sender has one). Only a
        # wrong answer is slowed, for a source that keeps sending them.
        if not self._authorised(body):  # before the details: strangers learn nothing more
            self.throttle.failed(peer)
            if not await self.throttle.wait(peer):
                many = "too many messages with wrong credentials from this source; send again later"
                await self._refuse(send, 429, many, peer=peer, close=True, retry_after=self.throttle.retry_after(peer))
                return
            await self._refuse(send, 401, "wrong username or password", peer=peer)
            return
        try:
            check(body)
        except BadMessage as error:
            await self._refuse(send, 400, str(error), peer=peer)
            return
        try:
            stored = await self.store.store(body, service_of(scope["path"], body))
        except MessageRefused as error:
            await self._refuse(send, 400, str(error), peer=peer)
            return
        except StoreUnavailable as error:
            await self._refuse(send, 503, str(error), peer=peer)
            return
        except RuntimeError:  # the store was closed under a request (the listener is stopping)
            await self._refuse(send, 503, "the listener is stopping", close=True, peer=peer)
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        await _answer(send, 200, {"stored": stored.id, "attempts": stored.attempts})
