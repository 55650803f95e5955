"""Serve a simulator over real HTTP on loopback with uvicorn, in a thread or in the foreground."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from tskit._serving import AsgiServer, bind
from tskit.simulator._asgi import SimulatorApp
from tskit.simulator._demo import demo_env

if TYPE_CHECKING:
    from tskit.simulator._core import Simulator


class SimulatorServer:
    """A simulator served by uvicorn on ``host:port`` (port 0 picks a free one).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Like the listener, it
    closes a connection whose request headers take over ``header_timeout`` seconds, and answers
    503 beyond ``max_connections`` at once.

    Attributes:
        simulator: The simulator being served.
        host: The address served on.
        port: The port served on (known once started).
    """

    def __init__(
        self,
        simulator: Simulator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        header_timeout: float = 10.0,
        max_connections: int = 256,
    ) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._server: AsgiServer | None = None

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
        if self._server is None:
            self._server = AsgiServer(
                SimulatorApp(self.simulator),
                bind(self.host, self.port),
                name="tskit-simulator",
                header_timeout=self.header_timeout,  # like the listener's: slow heads (slowloris) are closed
                max_connections=self.max_connections,
            )
            self.port = self._server.port
        return self.port

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving in a daemon thread; return once the server accepts connections."""
        self.bind()
        assert self._server is not None
        self._server.start(timeout)
        return self

    def run(self) -> None:
        """Serve in the foreground until interrupted (Ctrl-C)."""
        self.bind()
        assert self._server is not None
        try:
            self._server.run()
        finally:
            self._server = None

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self if self._server is not None and self._server.running else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
