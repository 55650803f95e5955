"""Serving an ASGI app with uvicorn on a socket of our own, in a background thread or the foreground.

Shared by the simulator's HTTP server and the callback listener.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one. An IPv6 address may be bracketed (``[::]``)."""
    host = host.strip("[]")
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


def _with_header_deadline(base: type[Any], seconds: float) -> type[Any]:
    """Wrap uvicorn's HTTP protocol to close connections whose request headers take over ``seconds``.

    uvicorn times out idle keep-alive connections but not a request whose headers trickle in
    (slowloris); this arms a timer whenever a request's first bytes arrive and cancels it once
    uvicorn has the whole head (it then starts a request cycle).
    """

    class HeaderDeadline(base):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._tskit_seen: Any = None
            self._tskit_deadline: Any = self.loop.call_later(seconds, self._tskit_late)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            cycle: Any = getattr(self, "cycle", None)
            if cycle is not None and cycle is not self._tskit_seen:  # a new request's head is complete
                self._tskit_seen = cycle
                self._cancel_deadline()
            elif self._tskit_deadline is None and (cycle is None or cycle.response_complete):
                self._tskit_deadline = self.loop.call_later(seconds, self._tskit_late)  # a next request begins

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_deadline()
            super().connection_lost(exc)

        def _cancel_deadline(self) -> None:
            if self._tskit_deadline is not None:
                self._tskit_deadline.cancel()
                self._tskit_deadline = None

        def _tskit_late(self) -> None:
            self._tskit_deadline = None
            cycle = getattr(self, "cycle", None)
            if cycle is None or cycle is self._tskit_seen:
                self.transport.close()

    return HeaderDeadline


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


class AsgiServer:
    """uvicorn serving ``app`` on an already bound socket.

    Args:
        app: The ASGI application.
        sock: The bound, listening socket (it is closed by :meth:`stop`).
        name: Name of the serving thread.
        header_timeout: Seconds a request's headers may take to arrive before the connection is
            closed; ``None``: no limit (uvicorn's default).
        max_connections: Connections (and requests under way) served at once; beyond it uvicorn
            answers 503 (its ``limit_concurrency``). ``None``: no cap.
        keep_alive: Seconds an idle keep-alive connection stays open (uvicorn's ``timeout_keep_alive``).
    """

    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        name: str,
        *,
        header_timeout: float | None = None,
        max_connections: int | None = None,
        keep_alive: int = 5,
    ) -> None:
        from tskit._extras import require

        uvicorn = require("uvicorn", "server")

        self.socket: socket.socket | None = sock
        self.port: int = sock.getsockname()[1]
        self.name = name
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            # uvicorn counts the new connection itself against the limit: + 1, so that exactly
            # max_connections are served at once, as documented
            limit_concurrency=None if max_connections is None else max_connections + 1,
            timeout_keep_alive=keep_alive,
            # the peer is the TCP peer: a client's X-Forwarded-For (trusted from loopback by default)
            # must not pass an allowlist, and there is no proxy in front to trust
            proxy_headers=False,
            forwarded_allow_ips="",
            ws="none",  # no WebSocket: an upgrade request is answered as a plain HTTP request
        )
        if header_timeout is not None:
            from uvicorn.protocols.http.auto import AutoHTTPProtocol  # httptools if installed, else h11

            config.http = _with_header_deadline(AutoHTTPProtocol, header_timeout)
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
        # uvicorn stops gracefully on SIGTERM, then raises it again: with the default handler that kills
        # the process before the caller's clean-up (a store's close) runs; as SystemExit(143) it runs.
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            self._server.run(sockets=[self.socket])
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
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
