"""The routes: which operation a request is, and the three callbacks calls with their errors.

Paths, bodies and status codes follow Verizon's documentation (``thingspace-api.md`` section 1);
where it is silent the behaviour is a :class:`SimulatorConfig` knob and the code is the simulator's
own (see :class:`~tskit.simulator._replies.Code`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from tskit.simulator._auth import Auth, Session
from tskit.simulator._config import SimulatorConfig
from tskit.simulator._delivery import url_problem
from tskit.simulator._facts import (
    LISTENER_PORTS,
    LISTENER_PORTS_TEXT,
    MAX_CREDENTIAL,
    SANDBOX_REGISTER_ACCOUNT,
    SERVICES,
)
from tskit.simulator._replies import Code, Reply, cm_error, json_object, json_reply, no_resource, not_found
from tskit.simulator._state import State

_PREFIX = "/api/m2m/v1/callbacks/"


def _unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode (no lone surrogates): it is sent back in every message."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def route(method: str, raw_path: str) -> tuple[str, list[str]]:
    """The operation of a request, and its path parameters (decoded after splitting)."""
    method = method.upper()
    if raw_path in ("/api/ts/v1/oauth2/token", "/api/ts/v1/oauth2/revoke"):
        return ("token" if raw_path.endswith("token") else "revoke") if method == "POST" else "unknown", []
    if raw_path in ("/api/m2m/v1/session/login", "/api/m2m/v1/session/logout"):
        return ("login" if raw_path.endswith("login") else "logout") if method == "POST" else "unknown", []
    if raw_path.startswith(_PREFIX):
        segments = [unquote(s) for s in raw_path[len(_PREFIX) :].split("/")]
        if len(segments) == 1 and segments[0]:
            return {"GET": "list", "POST": "register"}.get(method, "unknown"), segments
        if len(segments) == 3 and segments[0] and segments[1] == "name" and segments[2] and method == "DELETE":
            return "deregister", [segments[0], segments[2]]
        return "unknown", []
    if raw_path.startswith(("/api/m2m/", "/api/ts/")):
        return "unknown", []
    return "not-found", []


class Routes:
    """Answers a routed request: authentication first, then the callbacks call.

    Args:
        state: Accounts and registrations.
        auth: Tokens and sessions (and the simulator's clock).
        config: The undocumented behaviours.
    """

    def __init__(self, state: State, auth: Auth, config: SimulatorConfig) -> None:
        self.state = state
        self.auth = auth
        self.config = config

    def answer(self, operation: str, params: list[str], headers: Mapping[str, str], body: bytes) -> Reply:
        """The answer to one request whose operation is known."""
        if operation == "token":
            return self.auth.token(headers, body)
        if operation == "revoke":
            return self.auth.revoke(headers, body)
        if operation == "unknown":
            return no_resource()
        if operation == "not-found":
            return not_found()
        denied = self.auth.check_bearer(headers)
        if denied:
            return denied
        if operation == "login":
            return self.auth.login(body)
        session, denied = self.auth.check_session(headers)
        if denied:
            return denied
        assert session is not None
        if operation == "logout":
            return self.auth.logout(headers["vz-m2m-token"].strip())
        account = params[0]
        denied = self._check_account(session, account)
        if denied:
            return denied
        if operation == "list":
            return self._list(account)
        if operation == "register":
            return self._register(account, headers, body)
        return self._deregister(account, params[1])

    def _check_account(self, session: Session, account: str) -> Reply | None:
        if account not in self.state.accounts:
            return cm_error(400, Code.ACCOUNT_NOT_FOUND, f"Account {account} was not found.")
        if session.username and account not in self.state.users[session.username].accounts:
            return cm_error(400, Code.ACCOUNT_NOT_YOURS, "The authenticated user is not associated with the account.")
        return None

    def _list(self, account: str) -> Reply:
        items = [
            {"accountName": account, "serviceName": name, "url": r.url, "username": r.username, "password": r.password}
            for name, r in self.state.registrations(account).items()
        ]
        if not items and self.config.empty_list == "empty-body":
            return Reply(200, b"", (("content-type", "application/json"),))
        return json_reply(200, items)

    def _register(self, account: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if "application/json" not in headers.get("content-type", ""):
            return cm_error(400, Code.CONTENT_TYPE, "Content-Type must be application/json.")
        data = json_object(body)
        if data is None:
            return cm_error(400, Code.REQUEST_UNDEFINED, "The request body is not a JSON object.")
        if self.config.sandbox and account != SANDBOX_REGISTER_ACCOUNT:
            # Verizon: "Use TestAccount-2 when trying this request with the simulator"
            return cm_error(400, Code.SANDBOX_ACCOUNT, f"In the simulator, register with {SANDBOX_REGISTER_ACCOUNT}.")
        name, url = data.get("name"), data.get("url")
        username, password = data.get("username", ""), data.get("password", "")
        if not isinstance(name, str) or not name:
            return cm_error(400, Code.SERVICE_UNDEFINED, "name is required.")
        if name not in SERVICES:
            return cm_error(400, Code.SERVICE_INVALID, f"{name} is not a callback service name.")
        problem = self._url_problem(url)
        if problem:
            return cm_error(400, Code.URL_INVALID, problem)
        for code, key, value in (
            (Code.USERNAME_INVALID, "username", username),
            (Code.PASSWORD_INVALID, "password", password),
        ):
            if not isinstance(value, str) or len(value) > MAX_CREDENTIAL or not _unicode(value):
                return cm_error(400, code, f"{key} must be a string of {MAX_CREDENTIAL} characters or fewer.")
        if self.state.registration(account, name) is not None and self.config.reregister == "error":
            return cm_error(
                400, Code.ALREADY_REGISTERED, f"A {name} callback is already registered for account {account}."
            )
        assert isinstance(url, str) and isinstance(username, str) and isinstance(password, str)
        self.state.register(account, name, url, username, password, self.auth.now())
        return json_reply(200, {"accountName": account, "serviceName": name})

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
        if url_problem(url):
            return "url is not a valid URL."
        port = port or (443 if parts.scheme == "https" else 80)
        if self.config.enforce_listener_ports and port not in LISTENER_PORTS:
            return f"Port {port} is not allowed. Allowed ports: {LISTENER_PORTS_TEXT}."
        return ""

    def _deregister(self, account: str, service: str) -> Reply:
        if service not in SERVICES:
            return cm_error(400, Code.SERVICE_INVALID, f"{service} is not a callback service name.")
        if self.state.registration(account, service) is None and self.config.deregister_missing == "error":
            return cm_error(400, Code.NOT_REGISTERED, f"No {service} callback is registered for account {account}.")
        if self.config.sandbox and account != SANDBOX_REGISTER_ACCOUNT:
            # the examples are shared and read-only: answered as Verizon's page shows, left in place
            return json_reply(200, {"accountName": account, "serviceName": service})
        self.state.deregister(account, service)
        return json_reply(200, {"accountName": account, "serviceName": service})
