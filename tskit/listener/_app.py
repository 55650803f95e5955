"""The callback listener as an ASGI application: what ThingSpace POSTs, checked, stored, acknowledged.

Only a 2xx tells ThingSpace a message arrived, and one answered otherwise may be lost for good, so:
every check runs before anything is stored; the 2xx goes out only after the message is committed;
a redelivery is acknowledged again (and counted) without being stored twice.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import unquote

from tskit._models import SERVICE_CATALOGUE
from tskit._serving import lifespan, read_body
from tskit.listener._store import MessageStore

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


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ListenerApp:
    """ASGI app that accepts ThingSpace callback messages.

    Args:
        store: Where accepted messages go.
        username: Expected ``username`` in each body (``None``: not checked).
        passwords: Accepted ``password`` values; more than one during a rotation, since ThingSpace
            keeps sending the old one for minutes after a re-registration. Empty: not checked.
        max_body: Largest body accepted, in bytes; larger ones get 413.
        delay: Seconds to wait before answering (to test senders' timeouts).
    """

    def __init__(
        self,
        store: MessageStore,
        *,
        username: str | None = None,
        passwords: Sequence[str] = (),
        max_body: int = 1024 * 1024,
        delay: float = 0.0,
    ) -> None:
        self.store = store
        self.username = username
        self.passwords = [p.encode() for p in passwords]
        self.max_body = max_body
        self.delay = delay
        self.rejected = 0

    def _authorised(self, body: dict[str, Any]) -> bool:
        if self.username is not None:
            given = body.get("username")
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.username.encode()):
                return False
        if self.passwords:
            given = body.get("password")
            if not isinstance(given, str):
                return False
            # compare with every accepted password, so timing does not say which one matched
            matches = [hmac.compare_digest(given.encode(), p) for p in self.passwords]
            return any(matches)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] in ("/health", "/healthz"):
            await _answer(send, 200, {"status": "ok"})
            return
        if scope["method"] != "POST":
            await _answer(send, 405, {"error": "callback messages are POSTed"})
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_body:
            self.rejected += 1
            await _answer(send, 413, {"error": f"body larger than {self.max_body} bytes"})
            return
        raw = await read_body(receive, self.max_body)
        if len(raw) > self.max_body:
            self.rejected += 1
            await _answer(send, 413, {"error": f"body larger than {self.max_body} bytes"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.rejected += 1
            await _answer(send, 400, {"error": "the body is not a JSON object"})
            return
        if not self._authorised(body):
            self.rejected += 1
            await _answer(send, 401, {"error": "wrong username or password"})
            return
        stored = await self.store.store(body, service_of(scope["path"], body))
        if self.delay:
            await asyncio.sleep(self.delay)
        await _answer(send, 200, {"stored": stored.id, "attempts": stored.attempts})
