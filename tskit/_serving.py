"""Serving an ASGI app with uvicorn on a socket of our own, in a background thread or the foreground.

Shared by the simulator's HTTP server and the callback listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from tskit._extras import require
from tskit._stop_signals import stop_signals

if sys.platform != "win32":
    import fcntl
    import resource
    import termios

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


#: A request still unfinished when the server stops gets this answer (with ``Retry-After: 1``).
_STOPPING_BODY = b'{"error": "the server is stopping; send again shortly"}'


def answering_when_stopped(app: Any, stopping: Callable[[], bool]) -> Any:
    """``app``, whose requests cancelled because the server stops are answered 503, not logged as errors.

    uvicorn cancels the requests still running after its graceful wait (a body that never ends),
    answers them 500 and logs each ``CancelledError`` with its traceback; a Ctrl-C is no error, and
    503 with ``Retry-After`` tells the sender to send again.
    """

    async def app_answering(scope: Message, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracked)
        except asyncio.CancelledError:
            if scope["type"] != "http" or not stopping():
                raise
            if not started:
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_STOPPING_BODY)).encode()),
                    (b"retry-after", b"1"),
                    (b"connection", b"close"),
                ]
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": _STOPPING_BODY})

    return app_answering


#: A connection refused beyond the limit gets this answer, then is closed: ThingSpace sends again.
_BUSY_BODY = b'{"error": "too many connections at once; send again shortly"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)
#: Seconds a refused connection is kept half-closed, reading what its peer still sends, so that the
#: peer's request arriving after the 503 does not turn our close into a reset that loses the 503.
_LINGER = 2.0


class Gate:
    """The connections of one server: at most ``limit`` open, each refused or evicted one counted.

    When a connection arrives at the limit, the connection idle the longest (for at least
    ``idle_grace`` seconds: a kept-alive connection, or one whose request's head or body is still
    arriving; never one whose request is being answered) is answered 503 and closed to make room;
    if none is, the new connection is answered 503 with ``Retry-After`` and closed. So held idle or
    slow sockets cannot starve deliveries, and a burst beyond the limit is refused connection by
    connection while the others are served.
    """

    def __init__(self, limit: int | None, *, idle_grace: float = 1.0, log: logging.Logger | None = None) -> None:
        self.limit = limit
        self.idle_grace = idle_grace
        self.open: dict[Any, None] = {}  # protocol -> None, oldest first
        self.refused = 0  # connections answered 503 at once, beyond the limit
        self.evicted = 0  # idle connections closed to make room
        self._log = log
        self._reported = (0, 0)
        self._report_armed = False
        self._next_search = 0.0

    def admit(self, protocol: Any, now: float) -> bool:
        """Whether a new connection may be served (making room if an idle one can go)."""
        if self.limit is None or len(self.open) < self.limit:
            self.open[protocol] = None
            return True
        oldest = self._idle_one(now)
        if oldest is not None:
            del self.open[oldest]
            self.evicted += 1
            oldest.tskit_evict()
            self.open[protocol] = None
            return True
        self.refused += 1
        return False

    def _idle_one(self, now: float) -> Any:
        """The connection idle the longest, past the grace and with nothing unread; ``None`` if none is.

        A connection whose request waits unread in its socket (the loop is behind in a burst) is
        not idle. After a search that found none, none is searched for again before one could be.
        """
        if now < self._next_search:
            return None
        soonest = now + self.idle_grace  # a busy connection could be idle (and past the grace) by then
        idle = [(since, p) for p in self.open if (since := p.tskit_idle_since()) is not None]
        for since, protocol in sorted(idle, key=lambda pair: pair[0]):
            if now - since < self.idle_grace:
                soonest = min(soonest, since + self.idle_grace)
                break
            if not protocol.tskit_unread():
                return protocol
            soonest = min(soonest, now + 0.1)  # it is read soon; look again then
        self._next_search = soonest
        return None

    def report(self, loop: asyncio.AbstractEventLoop, every: float = 10.0) -> None:
        """Log that the limit was met: at once the first time, then once per ``every`` seconds with counts."""
        if self._log is None or self._report_armed:
            return
        self._report_armed = True
        self._log.warning("at the limit of %d connections: refusing new ones with 503, closing idle ones", self.limit)
        self._reported = (self.refused, self.evicted)
        loop.call_later(every, self._report_counts, loop, every)

    def _report_counts(self, loop: asyncio.AbstractEventLoop, every: float) -> None:
        refused, evicted = self.refused - self._reported[0], self.evicted - self._reported[1]
        self._reported = (self.refused, self.evicted)
        if not (refused or evicted):  # a quiet interval: the next refusal is logged at once
            self._report_armed = False
            return
        assert self._log is not None
        self._log.warning(
            "at the limit of %d connections: refused %d new connection(s) with 503 and closed %d idle one(s) "
            "in the last %g s",
            self.limit,
            refused,
            evicted,
            every,
        )
        loop.call_later(every, self._report_counts, loop, every)


def _unread(transport: Any) -> bool:
    """Whether bytes the peer sent wait unread in the socket (unknown on Windows: ``False``)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sys.platform == "win32":
        return False
    try:
        waiting = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return False
    return bool(int.from_bytes(waiting, sys.byteorder))


def _refuse_connection(transport: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Answer 503 at once, stop writing, and close after the peer's end or :data:`_LINGER` seconds."""
    transport.write(_BUSY)
    if transport.can_write_eof():
        transport.write_eof()
        loop.call_later(_LINGER, transport.close)
    else:
        transport.close()


def guarded(base: type[Any], gate: Gate, header_timeout: float | None) -> type[Any]:
    """Wrap uvicorn's HTTP protocol: the connection limit of ``gate``, and a deadline for request heads.

    uvicorn times out idle keep-alive connections but not a request whose headers trickle in
    (slowloris): with ``header_timeout``, a timer is armed whenever a request's first bytes arrive
    (or the connection opens) and cancelled once uvicorn has the whole head (it then starts a
    request cycle). uvicorn's own ``limit_concurrency`` is not used: it counts idle connections
    too, and once they reach it every request is answered 503.
    """

    class Guarded(base):  # type: ignore[misc]
        _tskit_refused = False
        _tskit_idle: float | None = None

        def connection_made(self, transport: Any) -> None:
            now = self.loop.time()
            self._tskit_idle = now
            if not gate.admit(self, now):
                self._tskit_refused = True
                gate.report(self.loop)
                _refuse_connection(transport, self.loop)
                return
            super().connection_made(transport)
            self._tskit_seen: Any = None
            self._tskit_deadline: Any = None
            if header_timeout is not None:
                self._tskit_deadline = self.loop.call_later(header_timeout, self._tskit_late)

        def tskit_idle_since(self) -> float | None:
            """Since when this connection waits on its peer; ``None`` while a request is being answered.

            Idle: no request, or a request's head or body still arriving (slow heads and bodies
            hold a connection as idle ones do). A request whose body has arrived is never idle.
            """
            cycle: Any = getattr(self, "cycle", None)
            if cycle is None or cycle.response_complete or (cycle.more_body and cycle is self._tskit_seen):
                return self._tskit_idle
            return None

        def tskit_unread(self) -> bool:
            """Whether bytes wait unread in this connection's socket."""
            return _unread(self.transport)

        def tskit_evict(self) -> None:
            """Close this idle (or slow) connection to make room; its peer reads the 503."""
            gate.report(self.loop)
            if not self.transport.is_closing():
                self.transport.write(_BUSY)
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._tskit_refused:
                return  # read and dropped: the 503 is sent
            super().data_received(data)
            cycle: Any = getattr(self, "cycle", None)
            if cycle is not None and cycle is not self._tskit_seen:  # a new request's head is complete
                self._tskit_seen = cycle
                self._tskit_idle = self.loop.time()  # its body arrives from now
                self._cancel_deadline()
            elif header_timeout is None:
                return
            elif self._tskit_deadline is None and (cycle is None or cycle.response_complete):
                self._tskit_deadline = self.loop.call_later(header_timeout, self._tskit_late)  # a next request

        def eof_received(self) -> Any:
            if self._tskit_refused:
                return False  # the transport closes itself
            return super().eof_received()

        def on_response_complete(self) -> None:
            self._tskit_idle = self.loop.time()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._tskit_refused:
                return
            gate.open.pop(self, None)
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

    return Guarded


def enough_open_files(wanted: int) -> int:
    """Raise the process's soft limit of open files to ``wanted`` if it is lower (never past the hard limit).

    Each connection is a file descriptor; with the common soft limit of 1,024, a burst of connections
    would otherwise fail to be accepted (``EMFILE``) rather than be answered. Returns the soft limit.
    """
    if sys.platform == "win32":  # no such limit to raise
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@functools.cache
def _quiet_server_class(server: type[Any]) -> type[Any]:
    """The ``uvicorn.Server`` that leaves SIGINT and SIGTERM to :func:`~tskit._stop_signals.stop_signals`.

    uvicorn would take them only while it serves (ignored ones too), and raise them again after.
    """

    class QuietServer(server):  # type: ignore[misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietServer


class AsgiServer:
    """uvicorn serving ``app`` on an already bound socket.

    Args:
        app: The ASGI application.
        sock: The bound, listening socket (it is closed by :meth:`stop`).
        name: Name of the serving thread.
        header_timeout: Seconds a request's headers may take to arrive (counted from the connection or
            the previous answer) before the connection is closed; ``None``: no limit.
        max_connections: Connections open at once. At the limit, the connection idle the longest
            (for over a second) is closed to make room; if none is, the new connection alone is
            answered 503 with ``Retry-After: 1`` (see :class:`Gate`). ``None``: no cap.
        keep_alive: Seconds an idle keep-alive connection stays open (uvicorn's ``timeout_keep_alive``).
        log: Where refused and evicted connections are reported: the first at once, then one line
            per 10 s with counts.

    With ``max_connections``, the process's soft limit of open files is raised, if lower, to
    ``max(8192, 4 * max_connections)`` (within the hard limit; see :func:`enough_open_files`): the
    connections refused in a burst are descriptors too, for the moment they linger.
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
        log: logging.Logger | None = None,
    ) -> None:
        uvicorn = require("uvicorn", "server")

        self.socket: socket.socket | None = sock
        self.port: int = sock.getsockname()[1]
        self.name = name
        config = uvicorn.Config(
            answering_when_stopped(app, lambda: self._server.should_exit),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=keep_alive,
            # the peer is the TCP peer: a client's X-Forwarded-For (trusted from loopback by default)
            # must not pass an allowlist, and there is no proxy in front to trust
            proxy_headers=False,
            forwarded_allow_ips="",
            ws="none",  # no WebSocket: an upgrade request is answered as a plain HTTP request
        )
        from uvicorn.protocols.http.auto import AutoHTTPProtocol  # httptools if installed, else h11

        self.gate = Gate(max_connections, log=log)
        config.http = guarded(AutoHTTPProtocol, self.gate, header_timeout)
        if max_connections is not None:
            # each connection is a descriptor, and refused ones linger a moment: room for a burst
            enough_open_files(max(8192, 4 * max_connections))
        self._server = _quiet_server_class(uvicorn.Server)(config)
        self._thread: threading.Thread | None = None
        self._runner: threading.Thread | None = None  # the thread in :meth:`run`, while it serves
        self._served = threading.Event()

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
        """Serve in the foreground until Ctrl-C or SIGTERM; then raise what it means to Python.

        Raises:
            KeyboardInterrupt: After Ctrl-C, once the server has stopped.
            SystemExit: After SIGTERM (code 143), once the server has stopped: the caller's clean-up
                (a store's close) runs, which the default SIGTERM would skip.
        """
        assert self.socket is not None
        # The request takes both signals, before, while and after uvicorn serves (which does not
        # take them itself here): a Ctrl-C at start-up is never lost, an ignored one stays ignored.
        with stop_signals() as request, request.telling(self._exit_on_signal):
            self._served.clear()
            self._runner = threading.current_thread()
            try:
                self._server.run(sockets=[self.socket])
            finally:
                self._runner = None
                self._served.set()
                self.stop()
            request.raise_if_requested()

    def _exit_on_signal(self, count: int) -> None:
        self._server.should_exit = True
        if count > 1:  # a second Ctrl-C: no graceful wait for open connections
            self._server.force_exit = True

    def stop(self) -> None:
        """Stop serving and release the port; from another thread than :meth:`run`'s, once it has stopped."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        # the socket closed under run()'s loop would fail its shutdown: let it stop, and close it itself
        runner = self._runner
        if runner is not None and runner is not threading.current_thread():
            self._served.wait(timeout=10)
        if self._runner is not None:
            return
        sock, self.socket = self.socket, None  # run()'s thread may be closing it too
        if sock is not None:
            sock.close()
