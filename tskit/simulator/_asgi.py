"""The simulator as an ASGI application, for uvicorn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tskit._serving import lifespan, read_body
from tskit.simulator._admin import TRIGGER_PATH, trigger

if TYPE_CHECKING:
    from tskit.simulator._core import Simulator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class DropConnection(Exception):
    """Raised after the response started, so that uvicorn closes the connection mid-answer."""


class _QuietDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for connections the simulator drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class SimulatorApp:
    """ASGI application serving a :class:`~tskit.simulator.Simulator` under the production paths."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive, self.simulator.config.max_body)
        raw = scope.get("raw_path") or quote(scope["path"]).encode()
        raw_path = raw.split(b"?", 1)[0].decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"] == TRIGGER_PATH:  # the simulator's own, not ThingSpace's
            client = scope.get("client")
            reply = await trigger(self.simulator, scope["method"], str(client[0]) if client else "", headers, body)
        else:
            reply = self.simulator.handle(scope["method"], raw_path, headers, body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
                }
            )
            raise DropConnection
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})
