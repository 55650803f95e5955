"""Serve a simulator over real HTTP on loopback with uvicorn, in a thread or in the foreground."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Self

import uvicorn

from tskit.simulator._asgi import SimulatorApp
from tskit.simulator._demo import demo_env

if TYPE_CHECKING:
    from tskit.simulator._core import Simulator


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
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class SimulatorServer:
    """A simulator served by uvicorn on ``host:port`` (port 0 picks a free one).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    Attributes:
        simulator: The simulator being served.
        host: The address served on.
        port: The port served on (known once started).
    """

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<SimulatorServer {self.base_url}>"

    @property
    def base_url(self) -> str:
        """The URL to give as ``THINGSPACE_BASE_URL``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def env(self) -> dict[str, str]:
        """The ``THINGSPACE_*`` variables that point any client at this server's demo data."""
        return demo_env(self.base_url)

    def export_lines(self) -> str:
        """Shell ``export`` lines for :meth:`env`."""
        return "\n".join(f"export {key}={value}" for key, value in self.env().items())

    def bind(self) -> int:
        """Bind the listening socket now (so the port is known before serving); returns the port."""
        if self._socket is None:
            self._socket = bind(self.host, self.port)
            self.port = self._socket.getsockname()[1]
        return self.port

    def _make_server(self) -> uvicorn.Server:
        self.bind()
        config = uvicorn.Config(
            SimulatorApp(self.simulator),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        return self._server

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving in a daemon thread; return once the server accepts connections."""
        server = self._make_server()
        assert self._socket is not None
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, name=f"tskit-simulator-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simulator server did not start on {self.base_url}")
            time.sleep(0.01)
        return self

    def run(self) -> None:
        """Serve in the foreground until interrupted (Ctrl-C)."""
        server = self._make_server()
        assert self._socket is not None
        try:
            server.run(sockets=[self._socket])
        finally:
            self._socket.close()
            self._socket = None

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Self:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
