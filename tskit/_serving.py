"""Serving an ASGI app with uvicorn on a socket of our own, in a background thread or the foreground.

Shared by the simulator's HTTP server and the callback listener.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are
    # TCP, and with Nagle on, every answer written in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


async def lifespan(receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]) -> None:
    """Answer an ASGI lifespan conversation: nothing to start or stop."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def read_body(receive: Callable[[], Awaitable[Message]], limit: int) -> bytes:
    """Read a request body, keeping at most ``limit + 1`` bytes: enough to tell it is too large."""
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if len(body) <= limit:
            body += message.get("body", b"")[: limit + 1 - len(body)]
        more = message.get("more_body", False)
    return bytes(body)


class AsgiServer:
    """uvicorn serving ``app`` on an already bound socket.

    Args:
        app: The ASGI application.
        sock: The bound, listening socket (it is closed by :meth:`stop`).
        name: Name of the serving thread.
    """

    def __init__(self, app: Any, sock: socket.socket, name: str) -> None:
        from tskit._extras import require

        uvicorn = require("uvicorn", "server")

        self.socket: socket.socket | None = sock
        self.port: int = sock.getsockname()[1]
        self.name = name
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether it is serving in its thread."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Serve in a daemon thread; return once connections are accepted."""
        assert self.socket is not None
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.socket]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start on port {self.port}")
            time.sleep(0.01)

    def run(self) -> None:
        """Serve in the foreground until interrupted (Ctrl-C or SIGTERM)."""
        assert self.socket is not None
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.socket is not None:
            self.socket.close()
            self.socket = None
