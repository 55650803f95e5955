"""ThingSpace's two-step login, simulated: OAuth tokens, M2M sessions, and the failed-login lockout.

Tokens: the same one for an hour after it was first issued, revocable. Sessions: a 20-minute idle
timeout that slides with every use; five failed logins in a row lock the user. In sandbox mode
(the API console's simulator) any credentials log in and any token is accepted, for ever.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from tskit.simulator._config import SimulatorConfig
from tskit.simulator._replies import (
    Code,
    Reply,
    cm_error,
    invalid_credentials,
    json_object,
    json_reply,
    missing_credentials,
    oauth_error,
)
from tskit.simulator._state import State

#: What a token may hold (the simulator's are UUIDs; RFC 6750's b64token characters).
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")


@dataclass(slots=True)
class Session:
    """One M2M session: its user (``""`` in sandbox mode: any account) and when it was last used."""

    username: str
    last_used: float


class Auth:
    """Issues and checks OAuth tokens and M2M session tokens.

    Args:
        state: The applications and users.
        config: Timings, lockout, statuses and codes, sandbox mode.
        now: The simulator's clock.
    """

    def __init__(self, state: State, config: SimulatorConfig, now: Callable[[], float]) -> None:
        self.state = state
        self.config = config
        self.now = now
        self.tokens: dict[str, float] = {}  # token -> expiry
        self.client_tokens: dict[str, str] = {}  # client id -> current token
        self.sessions: dict[str, Session] = {}

    # -- OAuth ------------------------------------------------------------------------------

    def token(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """``POST /api/ts/v1/oauth2/token``: Basic auth, form ``grant_type=client_credentials``."""
        client_id = self._basic_client(headers)
        if client_id is None:
            return missing_credentials("Basic")
        if client_id == "":
            return oauth_error(401, "invalid_client", "Client authentication failed.")
        grant = parse_qs(body.decode("utf-8", "replace")).get("grant_type", [""])[0]
        if not grant:
            return oauth_error(400, "invalid_request", "Missing grant_type parameter value")
        if grant != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type value")
        now = self.now()
        token = self.client_tokens.get(client_id)
        if token is None or self.tokens.get(token, 0.0) <= now:
            # Verizon: the same token is returned for an hour after it was first issued.
            token = str(uuid.uuid4())
            # the API console's test token does not expire
            self.tokens[token] = math.inf if self.config.sandbox else now + self.config.token_lifetime
            self.client_tokens[client_id] = token
        left = self.config.token_lifetime if self.config.sandbox else self.tokens[token] - now
        return json_reply(
            200, {"access_token": token, "token_type": "Bearer", "scope": "", "expires_in": max(1, int(left))}
        )

    def revoke(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """``POST /api/ts/v1/oauth2/revoke``: the revoked token in a header, no body."""
        client_id = self._basic_client(headers)
        if not client_id:
            return oauth_error(401, "invalid_client", "Client authentication failed.")
        token = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
        if token and not _TOKEN.fullmatch(token):  # it is echoed in a header: never raw input there
            return oauth_error(400, "invalid_request", "The token parameter is not a valid token.")
        if self.client_tokens.get(client_id) == token:
            del self.client_tokens[client_id]
            self.tokens.pop(token, None)
        return Reply(200, b"", (("revoked-token", token),) if token else ())

    def _basic_client(self, headers: Mapping[str, str]) -> str | None:
        """The client id of a valid Basic header; ``""`` if wrong; ``None`` if absent."""
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not value:
            return None
        try:
            client_id, _, client_secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, ValueError):  # not base64 (non-ASCII included), or not UTF-8 inside
            return ""
        if self.config.sandbox:
            return client_id or ""
        known = self.state.clients.get(client_id)
        if known is None or not secrets.compare_digest(known.encode(), client_secret.encode()):
            return ""
        return client_id

    def client_of(self, headers: Mapping[str, str]) -> str:
        """The application id of a valid Basic header, or ``""``."""
        return self._basic_client(headers) or ""

    def check_bearer(self, headers: Mapping[str, str]) -> Reply | None:
        """The gateway's 401 if the bearer token is missing, unknown or expired; else ``None``."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return missing_credentials("Bearer")
        if self.config.sandbox:
            return None  # the console's test token, or any other
        if self.tokens.get(token.strip(), 0.0) <= self.now():
            return invalid_credentials()
        return None

    # -- M2M session ------------------------------------------------------------------------

    def login(self, body: bytes) -> Reply:
        """``POST /api/m2m/v1/session/login`` with ``{"username", "password"}``."""
        data = json_object(body) or {}
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            return cm_error(400, Code.REQUEST_UNDEFINED, "username and password are required.")
        if self.config.sandbox:
            return self._open_session("")
        user = self.state.users.get(username)
        if user is not None and user.failed_logins >= self.config.lockout_after:
            return cm_error(
                self.config.login_failure_status,
                Code.USER_LOCKED,
                "The user is locked after too many failed log in attempts. Contact Verizon Support.",
            )
        if user is None or not secrets.compare_digest(
            user.password.encode(), password.encode("utf-8", "surrogatepass")
        ):
            if user is not None:
                user.failed_logins += 1
            return cm_error(
                self.config.login_failure_status,
                self.config.login_failure_code,
                "Log in failed: unknown user name or wrong password.",
            )
        user.failed_logins = 0
        return self._open_session(username)

    def _open_session(self, username: str) -> Reply:
        token = str(uuid.uuid4())
        self.sessions[token] = Session(username, self.now())
        return json_reply(200, {"sessionToken": token})

    def logout(self, token: str) -> Reply:
        """``POST /api/m2m/v1/session/logout``: the ended token back."""
        self.sessions.pop(token, None)
        return json_reply(200, {"sessionToken": token})

    def check_session(self, headers: Mapping[str, str]) -> tuple[Session | None, Reply | None]:
        """The session of the ``VZ-M2M-Token`` header, or the error answer."""
        token = headers.get("vz-m2m-token", "").strip()
        status = self.config.session_expired_status
        if not token:
            return None, cm_error(status, Code.SESSION_MISSING, "The VZ-M2M-Token header is missing.")
        if self.config.sandbox:
            return self.sessions.get(token) or Session("", self.now()), None  # "use any value"
        session = self.sessions.get(token)
        if session is None:
            return None, cm_error(status, Code.SESSION_INVALID, "The session token is not valid.")
        now = self.now()
        if now - session.last_used > self.config.session_idle_timeout:
            del self.sessions[token]
            return None, cm_error(status, self.config.session_expired_code, "The session token has expired.")
        session.last_used = now  # the idle timeout slides with every use
        return session, None

    # -- shortcuts for tests ------------------------------------------------------------------

    def expire_sessions(self) -> None:
        """Expire every session now, as 20 idle minutes would."""
        self.sessions.clear()

    def revoke_tokens(self) -> None:
        """Invalidate every OAuth token now."""
        self.tokens.clear()
        self.client_tokens.clear()

    def unlock(self, username: str) -> None:
        """Clear a user's failed-login count, as Verizon support would."""
        self.state.users[username].failed_logins = 0

    def is_locked(self, username: str) -> bool:
        """Whether the user is locked after too many failed logins."""
        user = self.state.users.get(username)
        return user is not None and user.failed_logins >= self.config.lockout_after
