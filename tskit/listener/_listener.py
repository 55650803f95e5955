"""Listener: run the callback listener on loopback and read what arrived."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tskit._models import ALLOWED_LISTENER_PORTS
from tskit._serving import AsgiServer, bind
from tskit.listener._app import ListenerApp
from tskit.listener._store import MessageStore

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

MESSAGE_COLUMNS = (
    "received_at",
    "request_id",
    "service",
    "status",
    "device_ids",
    "fault_code",
    "fault_string",
    "attempts",
    "callback_count",
)
#: Ports tried first: ones ThingSpace delivers to, so the listener's URL also passes tskit's checks.
PREFERRED_PORTS = (*range(28200, 28221), *range(9001, 9007))


def bind_listener_socket(host: str, port: int | None) -> socket.socket:
    """Bind ``port``; with ``None``, the first free one of ThingSpace's listener ports, else any."""
    if port is not None:
        return bind(host, port)
    for candidate in PREFERRED_PORTS:
        try:
            return bind(host, candidate)
        except OSError:
            continue
    return bind(host, 0)


class Listener:
    """A ThingSpace callback listener on this machine, storing every message in SQLite.

    It starts at once, in a background thread, on 127.0.0.1 and (unless ``port`` says otherwise)
    on a free port that ThingSpace delivers to (28200–28220, 9001–9006).

    Example:
        >>> listener = Listener(username="tsuser", password="s3cret")        # doctest: +SKIP
        >>> ts.register_callback(account, "CarrierService", listener.url_for("CarrierService"),
        ...                      username="tsuser", password="s3cret")      # doctest: +SKIP
        >>> listener.messages                                                # doctest: +SKIP

    Args:
        username: Expected username inside each message (ThingSpace sends back the registered one).
        password: Expected password; never stored or shown.
        previous_password: Also accepted, for the minutes after a password change during which
            ThingSpace keeps sending the old one.
        host: Address to listen on.
        port: Port to listen on; ``None`` picks as described, ``0`` any free port.
        store: SQLite file to keep messages in; default in memory (gone when the listener stops).
        max_body: Largest message accepted, in bytes.
        delay: Seconds to wait before acknowledging (to try senders' timeouts).
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        previous_password: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        store: str | Path = ":memory:",
        max_body: int = 1024 * 1024,
        delay: float = 0.0,
        start: bool = True,
    ) -> None:
        self.host = host
        self.username = username
        passwords = [p for p in (password, previous_password) if p]
        self.store = MessageStore(store)
        self.app = ListenerApp(self.store, username=username, passwords=passwords, max_body=max_body, delay=delay)
        self._server: AsgiServer | None = AsgiServer(self.app, bind_listener_socket(host, port), "tskit-listener")
        self.port: int = self._server.port
        if start:
            self.start()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Listener {self.url} {state}, {self.count()} messages>"

    @property
    def url(self) -> str:
        """The listener's URL: register it (or :meth:`url_for`) with ThingSpace."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/callbacks"

    def url_for(self, service: str) -> str:
        """A URL per service (Verizon advises one per service); messages are labelled by it."""
        return f"{self.url}/{service}"

    def set_password(self, password: str | None, *, previous_password: str | None = None) -> None:
        """Change the passwords accepted inside messages, while running.

        Args:
            password: The expected password (``None``: passwords are not checked).
            previous_password: Also accepted, during a rotation.
        """
        self.app.passwords = [p.encode() for p in (password, previous_password) if p]

    def rotate_password(self, new_password: str, *, still_registered: Iterable[str] = ()) -> bool:
        """Accept ``new_password`` from now on, and keep accepting every password accepted so far.

        Call it before moving ThingSpace's registrations to ``new_password`` (``ts.rotate_password``
        does), and :meth:`set_password` once ThingSpace has stopped sending the old ones. Running
        it again (a rotation re-run) never drops a password it accepted.

        Args:
            new_password: The password the registrations are moving to.
            still_registered: Passwords ThingSpace still holds for this listener: accepted too.

        Returns:
            ``False`` (and nothing changes) when this listener checks no password.
        """
        if not self.app.passwords:
            return False
        accepted = [new_password.encode(), *self.app.passwords, *(p.encode() for p in still_registered if p)]
        self.app.passwords = list(dict.fromkeys(accepted))  # in order, once each
        return True

    @property
    def allowed_by_thingspace(self) -> bool:
        """Whether the port is one ThingSpace delivers to (the URL passes tskit's checks)."""
        return self.port in ALLOWED_LISTENER_PORTS

    @property
    def running(self) -> bool:
        """Whether it is serving."""
        return self._server is not None and self._server.running

    def _ensure_server(self) -> AsgiServer:
        if self.store.closed:
            raise RuntimeError(
                "a stopped listener cannot start again; make a new Listener (same store= to keep its messages)"
            )
        if self._server is None:
            self._server = AsgiServer(self.app, bind_listener_socket(self.host, self.port), "tskit-listener")
        return self._server

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving in a background thread."""
        if not self.running:
            self._ensure_server().start(timeout)
        return self

    def serve_forever(self) -> None:
        """Serve in the foreground until interrupted (Ctrl-C or SIGTERM), then close the store."""
        try:
            self._ensure_server().run()
        finally:
            self._server = None
            self.stop()

    def stop(self) -> None:
        """Stop serving and close the store (an in-memory store's messages are then gone)."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- reading --------------------------------------------------------------------------

    def count(self) -> int:
        """How many distinct messages are stored."""
        if self.store.closed:
            return 0
        return int(self.store.query("SELECT count(*) FROM messages")[0][0])

    @property
    def messages(self) -> pd.DataFrame:
        """One row per distinct message, oldest first, flattened.

        Columns: received_at, request_id, service, status, device_ids (``kind:id`` joined by
        commas), fault_code, fault_string, attempts (arrivals, redeliveries included), callback_count.
        """
        return messages_frame(self.store)

    def raw(self) -> list[dict[str, Any]]:
        """Every stored message body as ThingSpace sent it, minus the password."""
        return [json.loads(body) for (body,) in self.store.query("SELECT body FROM messages ORDER BY id")]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` distinct messages are stored; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while self.count() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


def _devices(text: str) -> str:
    try:
        devices = json.loads(text)
    except ValueError:
        return ""
    return ", ".join(f"{d.get('kind', '')}:{d.get('id', '')}" for d in devices if isinstance(d, dict))


def messages_frame(store: MessageStore) -> pd.DataFrame:
    """The stored messages as a DataFrame with :data:`MESSAGE_COLUMNS`."""
    from tskit._frames import category, columns_frame, numbers, text, utc_times

    rows: list[tuple[Any, ...]] = list(
        store.query(
            "SELECT received_at, request_id, service, status, device_ids, fault_code, fault_string, attempts, "
            "callback_count FROM messages ORDER BY id"
        )
    )
    columns = {
        "received_at": utc_times([r[0] for r in rows]),
        "request_id": text([r[1] for r in rows]),
        "service": category([r[2] for r in rows]),
        "status": category([r[3] for r in rows]),
        "device_ids": text([_devices(r[4]) for r in rows]),
        "fault_code": text([r[5] for r in rows]),
        "fault_string": text([r[6] for r in rows]),
        "attempts": numbers([r[7] for r in rows]),
        "callback_count": numbers([r[8] for r in rows]),
    }
    return columns_frame(columns)
