"""Listener: run the callback listener on loopback and read what arrived."""

from __future__ import annotations

import json
import logging
import math
import socket
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from tskit._frames import category, columns_frame, numbers, text, utc_times
from tskit._models import ALLOWED_LISTENER_PORTS
from tskit._serving import AsgiServer, bind
from tskit.listener._app import ListenerApp
from tskit.listener._sources import networks
from tskit.listener._store import MessageStore, read_only_query
from tskit.listener._throttle import Throttle

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("tskit.listener")

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


NO_AUTH = (
    "this listener checks no username or password: it stores any message from anyone who can reach it; "
    "give the username and password you register with ThingSpace"
)


class NoAuthWarning(UserWarning):
    """A listener was made without credentials: it accepts anyone's messages."""


def read_messages(path: str | Path) -> pd.DataFrame:
    """The messages in a database file written by a listener (``tskit listen --store``), read-only.

    Needs no port, and works while the listener runs. Columns as :attr:`Listener.messages`.

    Raises:
        StoreOpenError: The file cannot be read as a message database.
    """
    return messages_frame(_FileReader(str(path)))


class _FileReader:
    def __init__(self, path: str) -> None:
        self.path = path

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return read_only_query(self.path, sql, params)


#: ThingSpace refuses to register a longer password, so it never sends one.
MAX_PASSWORD = 40


def _check_limits(*, port: int | None, **limits: float) -> None:
    """Refuse a port or limit the listener cannot work with, naming it and what is allowed.

    Raises:
        ValueError: Naming the argument.
    """
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"port: {port} is not a port; give 0 to 65535 (0: any free port)")
    for name, value in limits.items():
        whole = name in ("max_body", "max_connections", "keep_alive")
        most = _MOST.get(name, math.inf)
        if not math.isfinite(value) or not 0 < value <= most or (whole and value != int(value)):
            kind = "a whole number of 1 or more" if whole else "a number of seconds above 0"
            if name == "keep_alive":
                kind = "a whole number of seconds, 1 or more"
            bound = f", at most {most:g}" if most < math.inf else ""
            shown = int(value) if math.isfinite(value) and value == int(value) else value
            raise ValueError(f"{name}: {shown!r} is not allowed; give {kind}{bound}")


#: The largest value each limit may take: beyond it a listener holds sockets or messages for nothing
#: (a connection per file descriptor; a sender that waits minutes has given up).
_MOST: Final = {
    "max_connections": 65_536,
    "keep_alive": 3_600,
    "max_delay": 60,
    "header_timeout": 600,
    "body_timeout": 600,
}


class Listener:
    """A ThingSpace callback listener on this machine, storing every message in SQLite.

    It starts at once, in a background thread, on 127.0.0.1 and (unless ``port`` says otherwise)
    on a free port that ThingSpace delivers to (28200–28220, 9001–9006).

    Examples:
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
            A missing folder is created 0700, the files 0600.
        max_body: Largest message accepted, in bytes.
        delay: Seconds to wait before acknowledging (to try senders' timeouts).
        allow_from: Source addresses or networks allowed to POST (e.g. ``["verizon"]``, Verizon's
            published delivery addresses, or ``["203.0.113.0/24"]``); default any.
        header_timeout: Seconds a request's headers may take (from the connection, or the previous
            answer); a slower connection is closed (slowloris).
        body_timeout: Seconds a request's body may take; a slower one gets 408 and is closed.
        max_connections: Connections open at once. At the limit, the connection idle the longest
            (over a second; a request's head or body still arriving counts as idle) is answered 503
            and closed to make room; if none is, the new connection alone gets 503 with
            ``Retry-After: 1`` (ThingSpace sends again) while the others are served.
        keep_alive: Seconds an idle connection is kept open for the next message.
        max_delay: Longest wait, in seconds, before the credentials of a source that keeps sending
            wrong ones are checked (its first 5 failures are free, then the wait doubles from
            50 ms; a failure is forgotten per second); at most 4 of its messages wait at once,
            the rest get 429. Refusals are logged once per source and status, then one line per
            10 s with a count.

    The process's soft limit of open files is raised, if lower, to ``max(8192, 4 *
    max_connections)`` (within the hard limit): each connection is one.
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
        allow_from: Iterable[str] = (),
        header_timeout: float = 10.0,
        body_timeout: float = 10.0,
        max_connections: int = 256,
        keep_alive: int = 5,
        max_delay: float = 2.0,
        start: bool = True,
    ) -> None:
        _check_limits(
            port=port,
            max_body=max_body,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
            keep_alive=keep_alive,
            max_delay=max_delay,
        )
        for name, value in (("password", password), ("previous_password", previous_password)):
            if value and len(value) > MAX_PASSWORD:
                raise ValueError(
                    f"{name}: ThingSpace accepts at most {MAX_PASSWORD} characters at registration, so it "
                    f"never sends a password of {len(value)}"
                )
        if not password and username is None:
            warnings.warn(NO_AUTH, NoAuthWarning, stacklevel=2)
        self.host = host.strip("[]")
        self.username = username
        passwords = [p for p in (password, previous_password) if p]
        allow = networks(allow_from)
        self._limits = {"header_timeout": header_timeout, "max_connections": max_connections, "keep_alive": keep_alive}
        self.store = MessageStore(store)
        self.app = ListenerApp(
            self.store,
            username=username,
            passwords=passwords,
            max_body=max_body,
            delay=delay,
            body_timeout=body_timeout,
            allow_from=allow,
            throttle=Throttle(max_delay=max_delay),
        )
        self._server: AsgiServer | None = self._new_server(port)
        self.port: int = self._server.port
        if start:
            self.start()

    def _new_server(self, port: int | None) -> AsgiServer:
        sock = bind_listener_socket(self.host, port)
        return AsgiServer(self.app, sock, "tskit-listener", log=log, **self._limits)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        if not self.app.passwords and self.username is None:
            state += ", auth off"
        if self.store.failure is not None:
            return f"<Listener {self.url} {state}, store failed>"
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
            self._server = self._new_server(self.port)
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
        """Stop serving and close the store; its messages stay readable (:attr:`messages`, :meth:`raw`)."""
        server, self._server = self._server, None  # serve_forever() may end in another thread meanwhile
        if server is not None:
            server.stop()
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
        if self.store.failure is not None:
            return 0
        return int(self.store.query("SELECT count(*) FROM messages")[0][0])

    @property
    def messages(self) -> pd.DataFrame:
        """One row per distinct message, oldest first, flattened.

        Columns: received_at, request_id, service, status, device_ids (``kind:id`` joined by
        commas), fault_code, fault_string, attempts (arrivals, redeliveries included), callback_count.
        """
        return messages_frame(self.store)

    def changes(self, after_id: int = 0, after_time: str = "") -> pd.DataFrame:
        """Messages stored after row ``after_id``, or received again after ``after_time``.

        Like :attr:`messages`, plus the columns ``id`` and ``last_received_at`` to ask for the
        next changes with (what a live view needs, without reading every row again).
        """
        return messages_frame(self.store, after_id=after_id, after_time=after_time)

    def raw(self) -> list[dict[str, Any]]:
        """Every stored message body as ThingSpace sent it, minus passwords and secrets."""
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


_SELECT = (
    "SELECT received_at, request_id, service, status, device_ids, fault_code, fault_string, attempts, "
    "callback_count, id, last_received_at FROM messages"
)


def messages_frame(
    store: MessageStore | _FileReader, *, after_id: int | None = None, after_time: str = ""
) -> pd.DataFrame:
    """The stored messages as a DataFrame with :data:`MESSAGE_COLUMNS`.

    With ``after_id``, only rows stored after it or received again after ``after_time``, with the
    extra columns ``id`` and ``last_received_at``.
    """
    changes = after_id is not None
    if changes:
        rows: list[tuple[Any, ...]] = list(
            store.query(f"{_SELECT} WHERE id > ? OR last_received_at > ? ORDER BY id", (after_id, after_time))
        )
    else:
        rows = list(store.query(f"{_SELECT} ORDER BY id"))
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
    if changes:
        columns["id"] = numbers([r[9] for r in rows])
        columns["last_received_at"] = text([r[10] for r in rows])  # compared as text by MessagesView
    return columns_frame(columns)
