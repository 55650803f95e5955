"""The simulator: one object that ties its parts together and serves one request at a time.

The parts, one job each: :mod:`._state` (applications, users, accounts, registrations),
:mod:`._auth` (tokens, sessions, lockout), :mod:`._routes` (the callbacks API and its errors),
:mod:`._faults` (injected misbehaviour), :mod:`._messages` and :mod:`._delivery` (callback messages
and their retried delivery). This module holds the lock, the clock and the request log.

:meth:`Simulator.handle` takes one HTTP request (method, raw path, headers, body) and returns one
:class:`Reply`. The in-process httpx transport and the ASGI app served by uvicorn both call it, so
the embedded simulator and the loopback server behave the same.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tskit.simulator._auth import Auth
from tskit.simulator._config import SimulatorConfig
from tskit.simulator._delivery import POLICIES, Deliverer, Delivery, DeliveryPolicy, delivery_frame
from tskit.simulator._demo import seed, seed_sandbox
from tskit.simulator._faults import FAULTABLE, Faults, fault_reply
from tskit.simulator._messages import build_message
from tskit.simulator._replies import Code, Reply, cm_error
from tskit.simulator._routes import Routes, route
from tskit.simulator._server import SimulatorServer
from tskit.simulator._state import State
from tskit.simulator._transport import SimulatorTransport

__all__ = ["Reply", "RequestRecord", "Simulator"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the simulator saw of one request (no header values, no bodies)."""

    method: str
    path: str
    operation: str
    status: int
    at: float


class Simulator:
    """An in-memory ThingSpace for the callbacks API, its OAuth token and its M2M session.

    Thread-safe: the loopback server's thread and a test or notebook can use it at once.

    Args:
        config: Behaviour where Verizon documents none, timings and limits.
        faults: Fault knobs (latency, error and 429 rates, dropped connections).
        clock: Seconds, monotonic; tests pass a fake one (see also :meth:`advance`).
        demo: Seed the demo client, user, accounts and registrations (see ``tskit.simulator.demo``).
        sandbox: Behave like the API console's simulator (``config.sandbox``): any credentials and
            tokens, and the accounts ``TestAccount-1`` (reads) and ``TestAccount-2`` (register).
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
        demo: bool = True,
        sandbox: bool = False,
    ) -> None:
        self.config = config or SimulatorConfig()
        if sandbox and not self.config.sandbox:
            self.config = dataclasses.replace(self.config, sandbox=True)
        self.faults = faults or Faults()
        self._clock = clock
        self._offset = 0.0
        self._lock = threading.RLock()
        self._state = State()
        self._auth = Auth(self._state, self.config, self.now)
        self._routes = Routes(self._state, self._auth, self.config)
        self.requests: deque[RequestRecord] = deque(maxlen=10_000)
        self.deliveries: list[Delivery] = []
        self._deliverer: Deliverer | None = None
        if demo:
            seed(self)
        if self.config.sandbox:
            seed_sandbox(self)

    def __repr__(self) -> str:
        with self._lock:
            registered = sum(len(r) for r in self._state.accounts.values())
            mode = " sandbox" if self.config.sandbox else ""
            return f"<Simulator{mode} accounts={len(self._state.accounts)} registrations={registered}>"

    # -- setting up ---------------------------------------------------------------------

    def now(self) -> float:
        """The simulator's clock, in seconds."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward, e.g. past a session's 20-minute idle timeout."""
        with self._lock:
            self._offset += seconds

    def add_client(self, client_id: str, client_secret: str) -> None:
        """Create an OAuth application key and secret."""
        with self._lock:
            self._state.add_client(client_id, client_secret)

    def add_user(self, username: str, password: str, accounts: Iterable[str] = ()) -> None:
        """Create a UWS user with access to the given accounts (created if new)."""
        with self._lock:
            self._state.add_user(username, password, accounts)

    def add_account(self, account_name: str, users: Iterable[str] = ()) -> None:
        """Create an account (no registrations), reachable by the given existing users."""
        with self._lock:
            self._state.add_account(account_name, users)

    @property
    def accounts(self) -> list[str]:
        """Every account name, in creation order."""
        with self._lock:
            return list(self._state.accounts)

    def register(self, account_name: str, service_name: str, url: str, username: str = "", password: str = "") -> None:
        """Set a registration directly, bypassing the API (for seeding tests and demos)."""
        with self._lock:
            self._state.register(account_name, service_name, url, username, password, self.now())

    def registrations(self, account_name: str) -> list[dict[str, str]]:
        """The registrations of an account as stored, passwords included (server-side view)."""
        with self._lock:
            return [
                {"serviceName": name, "url": r.url, "username": r.username, "password": r.password}
                for name, r in self._state.registrations(account_name).items()
            ]

    def is_client(self, headers: Mapping[str, str]) -> bool:
        """Whether a request's Basic header names one of the simulator's applications (sandbox: any)."""
        with self._lock:
            return bool(self._auth.client_of(headers))

    def expire_sessions(self) -> None:
        """Expire every M2M session now, as 20 idle minutes would."""
        with self._lock:
            self._auth.expire_sessions()

    def revoke_tokens(self) -> None:
        """Invalidate every OAuth token now."""
        with self._lock:
            self._auth.revoke_tokens()

    def unlock(self, username: str) -> None:
        """Clear a user's failed-login count, as Verizon support would."""
        with self._lock:
            self._auth.unlock(username)

    def is_locked(self, username: str) -> bool:
        """Whether the user is locked after too many failed logins."""
        with self._lock:
            return self._auth.is_locked(username)

    def count(self, operation: str) -> int:
        """How many requests of an operation (``"login"``, ``"list"``, …) the simulator has seen."""
        with self._lock:
            return sum(1 for r in self.requests if r.operation == operation)

    # -- delivering callback messages ---------------------------------------------------------

    def trigger(
        self,
        account_name: str,
        service_name: str,
        kind: str | None = None,
        *,
        devices: list[dict[str, str]] | None = None,
        request_id: str | None = None,
        policy: DeliveryPolicy | str | None = None,
    ) -> Delivery:
        """Send a callback message to the listener registered for a service of an account.

        The message is built like ThingSpace's (see ``tskit.simulator._messages``), carries the
        registered username and password in its body (the previous password, within
        ``config.stale_password_window`` of a re-registration), and is POSTed with ``User-Agent:
        Verizon's callback service``, retried by the delivery policy. Returns at once; call
        ``.wait()`` on the result to block until it is delivered or given up.

        Args:
            account_name: The account.
            service_name: The service whose listener receives it.
            kind: What happened, e.g. ``"activation"`` or ``"fault"`` for CarrierService; see
                ``tskit.simulator.KINDS``.
            devices: The top-level device ids; default one identifier of a fresh device.
            request_id: The message's request id; default a new one.
            policy: ``"observed"``, ``"documented"`` or a :class:`DeliveryPolicy`; default the config's.

        Raises:
            LookupError: No listener is registered for that service of that account.
            ValueError: The service does not send that kind of message.
        """
        with self._lock:
            registration = self._state.registration(account_name, service_name)
            if registration is None:
                raise LookupError(f"no {service_name} listener is registered for account {account_name}")
            chosen = policy if isinstance(policy, DeliveryPolicy) else POLICIES[policy or self.config.delivery_policy]
            body = build_message(
                service_name,
                kind,
                account_name=account_name,
                username=registration.username,
                password=registration.password_at(self.now(), self.config.stale_password_window),
                request_id=request_id,
                devices=devices,
                max_callback_threshold=len(chosen.delays) + 1,
            )
            shown = dict(body, password="********" if body["password"] else "")
            delivery = Delivery(
                len(self.deliveries) + 1, account_name, service_name, registration.url, body["requestId"], shown, chosen
            )
            self.deliveries.append(delivery)
            if self._deliverer is None:
                self._deliverer = Deliverer()
            deliverer = self._deliverer
        deliverer.submit(delivery, body, self.config.delivery_time_scale)
        return delivery

    def delivery_log(self) -> Any:
        """Every delivery attempt as a DataFrame, oldest first.

        Columns: delivery, account_name, service_name, url, request_id, attempt, callback_count,
        status_code, outcome, sent_at, elapsed_ms, state. Numbers are numbers (``status_code`` is
        ``<NA>`` without an answer), ``sent_at`` a UTC datetime, names categoricals.
        """
        return delivery_frame(list(self.deliveries))

    def close(self) -> None:
        """Stop the delivery threads; deliveries waiting to be resent give up."""
        with self._lock:
            deliverer, self._deliverer = self._deliverer, None
        if deliverer is not None:
            deliverer.close()

    def transport(self) -> Any:
        """An httpx2 transport (sync and async) that serves this simulator in-process, no sockets."""
        return SimulatorTransport(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Any:
        """Serve this simulator over HTTP on loopback, in a background thread.

        Returns:
            A started :class:`~tskit.simulator.SimulatorServer`; use it as a context manager, or
            call ``stop()``.
        """
        return SimulatorServer(self, host=host, port=port).start()

    # -- serving ------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP request.

        Args:
            method: HTTP method.
            raw_path: The path as sent, still percent-encoded, without the query string.
            headers: Request headers with lower-case names.
            body: Request body.
        """
        operation, params = route(method, raw_path)
        with self._lock:
            fault = self.faults.draw(operation) if operation in FAULTABLE else None
            if fault is not None and fault.drop == "before":
                reply = Reply(0, drop=True)
            elif fault is not None and fault.status is not None:
                reply = fault_reply(fault.status, fault.retry_after)
            elif len(body) > self.config.max_body:
                reply = cm_error(413, Code.TOO_LARGE, "The request body is too large.")
            else:
                reply = self._routes.answer(operation, params, headers, body)
                if fault is not None and fault.drop == "after":
                    reply.drop = True
            reply.delay = self.faults.latency
            self.requests.append(RequestRecord(method, raw_path, operation, reply.status, self.now()))
            return reply
