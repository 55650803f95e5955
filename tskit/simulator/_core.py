"""The ThingSpace stand-in: accounts, OAuth tokens, M2M sessions, registrations, and the routes.

:meth:`Simulator.handle` takes one HTTP request (method, raw path, headers, body) and returns
one :class:`Reply`. The in-process httpx2 transport and the ASGI app served by uvicorn both call it,
so the embedded simulator and the loopback server behave the same.

Paths, bodies, status codes and the three error shapes follow Verizon's documentation. Where it
is silent, the simulator says so in :class:`SimulatorConfig` and lets the behaviour be chosen.
Error codes marked "simulator's own" below are not documented by Verizon.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from tskit._models import ALLOWED_LISTENER_PORTS, ALLOWED_LISTENER_PORTS_TEXT, SERVICE_CATALOGUE
from tskit.simulator._config import Faults, Operation, SimulatorConfig
from tskit.simulator._delivery import POLICIES, Deliverer, Delivery, DeliveryPolicy
from tskit.simulator._messages import build_message

JSON: Final = (("content-type", "application/json"),)
_CM = "UnifiedWebService"  # the service prefix of Connectivity Management error codes
_MAX_CREDENTIAL: Final = 40


@dataclass(slots=True)
class Reply:
    """One HTTP answer of the simulator.

    Attributes:
        status: HTTP status.
        body: Body bytes (may be empty).
        headers: Header pairs.
        delay: Seconds to wait before answering.
        drop: Close the connection instead of answering.
    """

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the simulator saw of one request (no header values, no bodies)."""

    method: str
    path: str
    operation: str
    status: int
    at: float


@dataclass(slots=True)
class _Registration:
    url: str
    username: str = ""
    password: str = ""


@dataclass(slots=True)
class _Session:
    username: str
    last_used: float


@dataclass(slots=True)
class _User:
    password: str
    accounts: set[str] = field(default_factory=set)
    failed_logins: int = 0


def _json(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, json.dumps(payload).encode(), JSON + headers)


def _cm_error(status: int, code: str, message: str) -> Reply:
    return _json(status, {"errorCode": f"{_CM}.{code}", "errorMessage": message})


def _fault(status: int, code: str, message: str, description: str) -> Reply:
    return _json(status, {"fault": {"code": code, "message": message, "description": description}})


def _oauth_error(status: int, error: str, description: str) -> Reply:
    return _json(status, {"error": error, "error_description": description})


_NO_RESOURCE = (
    400,
    "900906",
    "No matching resource found in the API for the given request",
    "Access failure for API: /m2m/v1, version: v1. Check the API documentation and add a proper "
    "REST resource path to the invocation URL",
)


class Simulator:
    """An in-memory ThingSpace for the callbacks API, its OAuth token and its M2M session.

    Thread-safe: the loopback server's thread and a test or notebook can use it at once.

    Args:
        config: Behaviour where Verizon documents none, timings and limits.
        faults: Fault knobs (latency, error and 429 rates, dropped connections).
        clock: Seconds, monotonic; tests pass a fake one (see also :meth:`advance`).
        demo: Seed the demo client, user, accounts and registrations (see ``tskit.simulator.demo``).
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
        demo: bool = True,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.faults = faults or Faults()
        self._clock = clock
        self._offset = 0.0
        self._lock = threading.RLock()
        self._clients: dict[str, str] = {}
        self._users: dict[str, _User] = {}
        self._accounts: dict[str, dict[str, _Registration]] = {}
        self._tokens: dict[str, float] = {}  # token -> expiry
        self._client_tokens: dict[str, str] = {}  # client id -> current token
        self._sessions: dict[str, _Session] = {}
        self.requests: deque[RequestRecord] = deque(maxlen=10_000)
        self.deliveries: list[Delivery] = []
        self._deliverer: Deliverer | None = None
        if demo:
            from tskit.simulator._demo import seed

            seed(self)

    def __repr__(self) -> str:
        with self._lock:
            registered = sum(len(r) for r in self._accounts.values())
            return f"<Simulator accounts={len(self._accounts)} registrations={registered}>"

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
            self._clients[client_id] = client_secret

    def add_user(self, username: str, password: str, accounts: Iterable[str] = ()) -> None:
        """Create a UWS user with access to the given accounts (created if new)."""
        with self._lock:
            user = self._users.setdefault(username, _User(password))
            user.password = password
            for account in accounts:
                self.add_account(account)
                user.accounts.add(account)

    def add_account(self, account_name: str, users: Iterable[str] = ()) -> None:
        """Create an account (no registrations), reachable by the given existing users."""
        with self._lock:
            self._accounts.setdefault(account_name, {})
            for username in users:
                self._users[username].accounts.add(account_name)

    @property
    def accounts(self) -> list[str]:
        """Every account name, in creation order."""
        with self._lock:
            return list(self._accounts)

    def register(self, account_name: str, service_name: str, url: str, username: str = "", password: str = "") -> None:
        """Set a registration directly, bypassing the API (for seeding tests and demos)."""
        with self._lock:
            self._accounts.setdefault(account_name, {})[service_name] = _Registration(url, username, password)

    def registrations(self, account_name: str) -> list[dict[str, str]]:
        """The registrations of an account as stored, passwords included (server-side view)."""
        with self._lock:
            return [
                {"serviceName": name, "url": r.url, "username": r.username, "password": r.password}
                for name, r in self._accounts.get(account_name, {}).items()
            ]

    def expire_sessions(self) -> None:
        """Expire every M2M session now, as 20 idle minutes would."""
        with self._lock:
            self._sessions.clear()

    def revoke_tokens(self) -> None:
        """Invalidate every OAuth token now."""
        with self._lock:
            self._tokens.clear()
            self._client_tokens.clear()

    def unlock(self, username: str) -> None:
        """Clear a user's failed-login count, as Verizon support would."""
        with self._lock:
            self._users[username].failed_logins = 0

    def is_locked(self, username: str) -> bool:
        """Whether the user is locked after too many failed logins."""
        with self._lock:
            user = self._users.get(username)
            return user is not None and user.failed_logins >= self.config.lockout_after

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
        registered username and password in its body, and is POSTed with ``User-Agent:
        Verizon's callback service``, retried by the delivery policy. Returns at once; call
        ``.wait()`` on the result to block until it is delivered or given up.

        Args:
            account_name: The account.
            service_name: The service whose listener receives it.
            kind: What happened, e.g. ``"activation"`` or ``"fault"`` for CarrierService; see
                ``tskit.simulator.KINDS``.
            devices: Device ids; default a fresh device.
            request_id: The message's request id; default a new one.
            policy: ``"observed"``, ``"documented"`` or a :class:`DeliveryPolicy`; default the config's.

        Raises:
            LookupError: No listener is registered for that service of that account.
            ValueError: The service does not send that kind of message.
        """
        with self._lock:
            registration = self._accounts.get(account_name, {}).get(service_name)
            if registration is None:
                raise LookupError(f"no {service_name} listener is registered for account {account_name}")
            body = build_message(
                service_name,
                kind,
                account_name=account_name,
                username=registration.username,
                password=registration.password,
                request_id=request_id,
                devices=devices,
            )
            chosen = policy if isinstance(policy, DeliveryPolicy) else POLICIES[policy or self.config.delivery_policy]
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
        from tskit._frames import category, columns_frame, numbers, text, utc_times

        pairs = [(d, a) for d in list(self.deliveries) for a in list(d.attempts)]
        return columns_frame(
            {
                "delivery": numbers([d.id for d, _ in pairs]),
                "account_name": category([d.account_name for d, _ in pairs]),
                "service_name": category([d.service_name for d, _ in pairs]),
                "url": text([d.url for d, _ in pairs]),
                "request_id": text([d.request_id for d, _ in pairs]),
                "attempt": numbers([a.number for _, a in pairs]),
                "callback_count": numbers([a.callback_count for _, a in pairs]),
                "status_code": numbers([a.status_code for _, a in pairs]),
                "outcome": category([a.outcome for _, a in pairs]),
                "sent_at": utc_times([a.sent_at for _, a in pairs], epoch_seconds=True),
                "elapsed_ms": [round(a.elapsed * 1000, 1) for _, a in pairs],
                "state": category([d.state for d, _ in pairs]),
            }
        )

    def close(self) -> None:
        """Wait for deliveries under way, then stop the delivery threads."""
        if self._deliverer is not None:
            self._deliverer.close()
            self._deliverer = None

    def transport(self) -> Any:
        """An httpx2 transport (sync and async) that serves this simulator in-process, no sockets."""
        from tskit.simulator._transport import SimulatorTransport

        return SimulatorTransport(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Any:
        """Serve this simulator over HTTP on loopback, in a background thread.

        Returns:
            A started :class:`~tskit.simulator.SimulatorServer`; use it as a context manager, or
            call ``stop()``.
        """
        from tskit.simulator._server import SimulatorServer

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
        operation, params = _route(method, raw_path)
        with self._lock:
            fault = self.faults.draw(operation) if operation in _FAULTABLE else None
            if fault is not None and fault.drop == "before":
                reply = Reply(0, drop=True)
            elif fault is not None and fault.status is not None:
                reply = self._fault_reply(fault.status, fault.retry_after)
            elif len(body) > self.config.max_body:
                reply = _cm_error(413, "INPUT_INVALID.RequestTooLarge", "The request body is too large.")
            else:
                reply = self._dispatch(operation, params, headers, body)
                if fault is not None and fault.drop == "after":
                    reply.drop = True
            reply.delay = self.faults.latency
            self.requests.append(RequestRecord(method, raw_path, operation, reply.status, self.now()))
            return reply

    @staticmethod
    def _fault_reply(status: int, retry_after: float | None) -> Reply:
        extra = (("retry-after", f"{retry_after:g}"),) if retry_after is not None else ()
        if status == 429:
            return _json(
                status,
                {
                    "errorCode": f"{_CM}.REQUEST_FAILED.TooManyRequests",
                    "errorMessage": "Too many requests. Try again later.",
                },
                extra,
            )
        return _json(
            status,
            {"errorCode": f"{_CM}.REQUEST_FAILED.UnexpectedError", "errorMessage": "An unexpected error occurred."},
            extra,
        )

    def _dispatch(self, operation: str, params: list[str], headers: Mapping[str, str], body: bytes) -> Reply:
        if operation == "token":
            return self._token(headers, body)
        if operation == "revoke":
            return self._revoke(headers, body)
        if operation == "unknown":
            return _fault(*_NO_RESOURCE)
        if operation == "not-found":
            return Reply(404, b"The requested resource is not available", (("content-type", "text/plain"),))
        denied = self._check_bearer(headers)
        if denied:
            return denied
        if operation == "login":
            return self._login(body)
        session, denied = self._check_session(headers)
        if denied:
            return denied
        assert session is not None
        if operation == "logout":
            token = headers["vz-m2m-token"]
            del self._sessions[token]
            return _json(200, {"sessionToken": token})
        account = params[0]
        denied = self._check_account(session, account)
        if denied:
            return denied
        if operation == "list":
            return self._list(account)
        if operation == "register":
            return self._register(account, headers, body)
        return self._deregister(account, params[1])

    # -- auth ---------------------------------------------------------------------------

    def _token(self, headers: Mapping[str, str], body: bytes) -> Reply:
        client_id = self._basic_client(headers)
        if client_id is None:
            return _fault(
                401,
                "900902",
                "Missing Credentials",
                "Required OAuth credentials not provided. Make sure your API invocation call has a "
                'header: "Authorization: Basic ACCESS_TOKEN"',
            )
        if client_id == "":
            return _oauth_error(401, "invalid_client", "Client authentication failed.")
        form = parse_qs(body.decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        if not grant:
            return _oauth_error(400, "invalid_request", "Missing grant_type parameter value")
        if grant != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Unsupported grant_type value")
        now = self.now()
        token = self._client_tokens.get(client_id)
        if token is None or self._tokens.get(token, 0.0) <= now:
            # Verizon: the same token is returned for an hour after it was first issued.
            token = str(uuid.uuid4())
            self._tokens[token] = now + self.config.token_lifetime
            self._client_tokens[client_id] = token
        return _json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "scope": "",
                "expires_in": max(1, int(self._tokens[token] - now)),
            },
        )

    def _revoke(self, headers: Mapping[str, str], body: bytes) -> Reply:
        client_id = self._basic_client(headers)
        if not client_id:
            return _oauth_error(401, "invalid_client", "Client authentication failed.")
        token = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        if self._client_tokens.get(client_id) == token:
            del self._client_tokens[client_id]
            self._tokens.pop(token, None)
        return Reply(200, b"", (("revoked-token", token),) if token else ())

    def _basic_client(self, headers: Mapping[str, str]) -> str | None:
        """The client id of a valid Basic header; ``""`` if wrong; ``None`` if absent."""
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not value:
            return None
        try:
            client_id, _, client_secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        known = self._clients.get(client_id)
        if known is None or not secrets.compare_digest(known.encode(), client_secret.encode()):
            return ""
        return client_id

    def _check_bearer(self, headers: Mapping[str, str]) -> Reply | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _fault(
                401,
                "900902",
                "Missing Credentials",
                "Required OAuth credentials not provided. Make sure your API invocation call has a "
                'header: "Authorization: Bearer ACCESS_TOKEN"',
            )
        if self._tokens.get(token.strip(), 0.0) <= self.now():
            return _fault(
                401,
                "900901",
                "Invalid Credentials",
                "Access failure for API: /m2m/v1, version: v1. Make sure you have given the correct access token",
            )
        return None

    def _login(self, body: bytes) -> Reply:
        data = _object(body)
        username, password = (data or {}).get("username"), (data or {}).get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            return _cm_error(400, "INPUT_INVALID.Request.Undefined", "username and password are required.")
        user = self._users.get(username)
        if user is not None and user.failed_logins >= self.config.lockout_after:
            return _cm_error(
                self.config.login_failure_status,
                "REQUEST_FAILED.UserLocked",  # simulator's own
                "The user is locked after too many failed log in attempts. Contact Verizon Support.",
            )
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            if user is not None:
                user.failed_logins += 1
            return _cm_error(
                self.config.login_failure_status,
                "REQUEST_FAILED.Login.Failed",  # simulator's own
                "Log in failed: unknown user name or wrong password.",
            )
        user.failed_logins = 0
        token = str(uuid.uuid4())
        self._sessions[token] = _Session(username, self.now())
        return _json(200, {"sessionToken": token})

    def _check_session(self, headers: Mapping[str, str]) -> tuple[_Session | None, Reply | None]:
        token = headers.get("vz-m2m-token", "").strip()
        if not token:
            return None, _cm_error(
                self.config.session_expired_status,
                "REQUEST_FAILED.SessionToken.Format",
                "The VZ-M2M-Token header is missing.",
            )
        session = self._sessions.get(token)
        now = self.now()
        if session is None:
            return None, _cm_error(
                self.config.session_expired_status,
                "INPUT_INVALID.SessionToken.Invalid",
                "The session token is not valid.",
            )
        if now - session.last_used > self.config.session_idle_timeout:
            del self._sessions[token]
            return None, _cm_error(
                self.config.session_expired_status,
                "REQUEST_FAILED.SessionToken.Expired",
                "The session token has expired.",
            )
        session.last_used = now  # the idle timeout slides with every use
        return session, None

    def _check_account(self, session: _Session, account: str) -> Reply | None:
        if account not in self._accounts:
            return _cm_error(400, "REQUEST_FAILED.AccountNotFound", f"Account {account} was not found.")
        if account not in self._users[session.username].accounts:
            return _cm_error(
                400, "REQUEST_FAILED.AccountName", "The authenticated user is not associated with the account."
            )
        return None

    # -- callbacks ----------------------------------------------------------------------

    def _list(self, account: str) -> Reply:
        items = [
            {"accountName": account, "serviceName": name, "url": r.url, "username": r.username, "password": r.password}
            for name, r in self._accounts[account].items()
        ]
        if not items and self.config.empty_list == "empty-body":
            return Reply(200, b"", JSON)
        return _json(200, items)

    def _register(self, account: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if "application/json" not in headers.get("content-type", ""):
            return _cm_error(400, "INPUT_INVALID.Request.ContentType", "Content-Type must be application/json.")
        data = _object(body)
        if data is None:
            return _cm_error(400, "INPUT_INVALID.RequestUndefined", "The request body is not a JSON object.")
        name, url = data.get("name"), data.get("url")
        username, password = data.get("username", ""), data.get("password", "")
        if not isinstance(name, str) or not name:
            return _cm_error(400, "INPUT_INVALID.ServiceName.Undefined", "name is required.")
        if name not in SERVICE_CATALOGUE:
            return _cm_error(400, "INPUT_INVALID.ServiceName.Invalid", f"{name} is not a callback service name.")
        problem = self._url_problem(url)
        if problem:
            return _cm_error(400, "INPUT_INVALID.Url.Invalid", problem)  # simulator's own
        for key, value in (("username", username), ("password", password)):
            if not isinstance(value, str) or len(value) > _MAX_CREDENTIAL:
                return _cm_error(
                    400,
                    f"INPUT_INVALID.{key.capitalize()}.Invalid",
                    f"{key} must be a string of {_MAX_CREDENTIAL} characters or fewer.",
                )
        registrations = self._accounts[account]
        if name in registrations and self.config.reregister == "error":
            return _cm_error(
                400,
                "REQUEST_FAILED.CallbackAlreadyRegistered",  # simulator's own
                f"A {name} callback is already registered for account {account}.",
            )
        assert isinstance(url, str)
        registrations[name] = _Registration(url, username, password)
        return _json(200, {"accountName": account, "serviceName": name})

    def _url_problem(self, url: object) -> str:
        if not isinstance(url, str) or not url:
            return "url is required."
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "url is not a valid URL."
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "url must be an http or https URL with a host."
        port = port or (443 if parts.scheme == "https" else 80)
        if self.config.enforce_listener_ports and port not in ALLOWED_LISTENER_PORTS:
            return f"Port {port} is not allowed. Allowed ports: {ALLOWED_LISTENER_PORTS_TEXT}."
        return ""

    def _deregister(self, account: str, service: str) -> Reply:
        if service not in SERVICE_CATALOGUE:
            return _cm_error(400, "INPUT_INVALID.ServiceName.Invalid", f"{service} is not a callback service name.")
        registrations = self._accounts[account]
        if service not in registrations and self.config.deregister_missing == "error":
            return _cm_error(
                400,
                "REQUEST_FAILED.CallbackNotRegistered",  # simulator's own
                f"No {service} callback is registered for account {account}.",
            )
        registrations.pop(service, None)
        return _json(200, {"accountName": account, "serviceName": service})


_FAULTABLE: Final = frozenset({"token", "login", "list", "register", "deregister"})


def _object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _route(method: str, raw_path: str) -> tuple[Operation | str, list[str]]:
    """Match a request to an operation; path parameters are decoded after splitting."""
    method = method.upper()
    if raw_path in ("/api/ts/v1/oauth2/token", "/api/ts/v1/oauth2/revoke"):
        return ("token" if raw_path.endswith("token") else "revoke") if method == "POST" else "unknown", []
    if raw_path in ("/api/m2m/v1/session/login", "/api/m2m/v1/session/logout"):
        return ("login" if raw_path.endswith("login") else "logout") if method == "POST" else "unknown", []
    prefix = "/api/m2m/v1/callbacks/"
    if raw_path.startswith(prefix):
        segments = [unquote(s) for s in raw_path[len(prefix) :].split("/")]
        if len(segments) == 1 and segments[0]:
            return {"GET": "list", "POST": "register"}.get(method, "unknown"), segments
        if len(segments) == 3 and segments[0] and segments[1] == "name" and segments[2] and method == "DELETE":
            return "deregister", [segments[0], segments[2]]
        return "unknown", []
    if raw_path.startswith(("/api/m2m/", "/api/ts/")):
        return "unknown", []
    return "not-found", []
