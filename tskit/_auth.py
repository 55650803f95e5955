"""ThingSpace's two-step authentication as an ``httpx2.Auth`` flow.

Every Connectivity Management call needs an OAuth2 bearer token (client credentials, valid one
hour) *and* an M2M session token from ``POST /api/m2m/v1/session/login`` (expires after 20 minutes
without use). :class:`ThingSpaceAuth` fetches both when first needed, reuses them while they are
valid, sends them as ``Authorization: Bearer …`` and ``VZ-M2M-Token``, and logs in again once
when ThingSpace answers 401 or says the session token expired.

Two rules keep accounts safe:

* one login at a time: concurrent calls wait for the login in progress instead of each logging in;
* a refused token request or login is never retried. ThingSpace locks a user after five failed
  logins, so after one refusal every further call fails at once, without a request, until
  :meth:`ThingSpaceAuth.reset` is called with corrected credentials.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import httpx2

from tskit._config import LOGIN_PATH, TOKEN_PATH, Credentials
from tskit._errors import AuthenticationError, error_from_response, parse_error_body, scrub
from tskit._secret import Secret

logger = logging.getLogger("tskit.auth")

Steps = Generator[httpx2.Request, httpx2.Response, None]


class ThingSpaceAuth(httpx2.Auth):
    """OAuth2 client-credentials token plus M2M session token, for ``httpx2`` clients.

    Works with both ``httpx2.Client`` and ``httpx2.AsyncClient``.

    Args:
        credentials: Application key and secret, UWS user name and password.
        base_url: The ThingSpace host root, e.g. ``"https://thingspace.verizon.com"``.
        session_idle_timeout: Seconds of inactivity after which ThingSpace drops a session.
        margin: Seconds before a token's or session's end at which a new one is fetched.
        clock: Monotonic clock in seconds; tests pass a fake one.
        remember_refusals: Record a refused login on disk and refuse to try the same credentials
            again in any later run (a cron job would otherwise lock the user on its fifth run);
            see ``tskit._refusals``.
    """

    requires_response_body = True

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str,
        session_idle_timeout: float = 1200.0,
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        remember_refusals: bool = True,
    ) -> None:
        self._credentials = credentials
        self._remember = remember_refusals
        self._disk_checked = False
        self._stale_record = False
        self._base_url = base_url.rstrip("/")
        self._idle_timeout = session_idle_timeout
        self._margin = margin
        self._clock = clock
        self._token: Secret | None = None
        self._token_expires_at = 0.0
        self._session: Secret | None = None
        self._session_last_used = 0.0
        self._generation = 0
        self._refused: AuthenticationError | None = None
        self._thread_lock = threading.Lock()
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        #: Token requests sent so far (for monitoring and tests).
        self.token_requests = 0
        #: Session logins sent so far (for monitoring and tests).
        self.logins = 0

    def __repr__(self) -> str:
        state = "refused" if self._refused else ("session" if self._session else "no session")
        return f"<ThingSpaceAuth user={self._credentials.username!r} {state}>"

    @property
    def username(self) -> str:
        """The UWS user this flow logs in as."""
        return self._credentials.username

    @property
    def refused(self) -> AuthenticationError | None:
        """The error of the refused login or token request that blocks further logins, if any."""
        return self._refused

    def secret_values(self) -> tuple[str, ...]:
        """Every secret this flow holds, for scrubbing texts a server sends back."""
        held = [s.reveal() for s in (self._token, self._session) if s]
        return (*self._credentials.secret_values(), *held)

    def reset(self, credentials: Credentials | None = None) -> None:
        """Forget tokens and any refused login, optionally with new credentials.

        Call this after fixing credentials that ThingSpace refused; until then no login is tried.
        """
        if credentials is not None:
            self._credentials = credentials
        self._token = self._session = None
        self._refused = None
        self._disk_checked = False

    # -- the sans-I/O steps -------------------------------------------------------------

    def _token_valid(self) -> bool:
        return self._token is not None and self._clock() < self._token_expires_at - self._margin

    def _session_valid(self) -> bool:
        return self._session is not None and self._clock() - self._session_last_used < self._idle_timeout - self._margin

    def _refuse(self, response: httpx2.Response, what: str) -> AuthenticationError:
        error = error_from_response(
            response.status_code,
            response.content,
            method=response.request.method,
            path=response.request.url.path,
            reason=response.reason_phrase,
            secrets=self.secret_values(),
            cls=AuthenticationError,
            note=(
                f"ThingSpace refused the {what}; tskit does not try again by itself "
                "(5 failed logins lock the user). Check the credentials, then reconnect"
            ),
        )
        assert isinstance(error, AuthenticationError)
        if response.status_code < 500:
            self._refused = error
            if self._remember:
                from tskit import _refusals

                try:
                    _refusals.remember(self._base_url, self._credentials, error.status_code, error.error_code)
                except (OSError, ValueError) as problem:  # the refusal itself must still reach the caller
                    logger.warning("could not record the refused login: %s", problem)
        logger.warning("%s refused with status %s", what, response.status_code)
        return error

    def _json(self, response: httpx2.Response, what: str) -> dict[str, Any]:
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise AuthenticationError(
                response.status_code,
                "",
                f"the {what} answer is not a JSON object: {scrub(response.text, self.secret_values())!r}",
                method=response.request.method,
                path=response.request.url.path,
            )
        return data

    def _check_disk(self) -> None:
        """Once per credentials: refuse at once if an earlier run saw exactly these refused."""
        self._disk_checked = True
        if not self._remember:
            return
        from tskit import _refusals

        try:
            earlier = _refusals.refused_before(self._base_url, self._credentials)
            self._stale_record = earlier is None and _refusals.recorded(self._base_url, self._credentials)
        except (OSError, ValueError) as problem:
            logger.warning("could not read the record of refused logins: %s", problem)
            return
        if earlier is not None:
            self._refused = AuthenticationError(
                int(earlier.get("status_code") or 0),
                str(earlier.get("error_code") or ""),
                f"a login with these credentials was refused at {earlier.get('at')} (an earlier run)",
                method="POST",
                path=LOGIN_PATH,
                note="Not sent: tskit will not try them again from any run (5 failed logins lock the user). "
                "Fix the credentials, or run `tskit reset-login` once the user is unlocked",
            )

    def _login_steps(self) -> Steps:
        """Yield the token request and the login, whichever are needed; raise if refused."""
        if not self._disk_checked and self._refused is None and not (self._token_valid() and self._session_valid()):
            self._check_disk()
        if self._refused is not None:
            raise AuthenticationError(
                self._refused.status_code,
                self._refused.error_code,
                self._refused.error_message,
                method=self._refused.method,
                path=self._refused.path,
                note="Not sent: an earlier login with these credentials was refused and is not retried. "
                "Fix the credentials and reconnect (or call reset())",
            )
        if not self._token_valid():
            self._session = None  # a session belongs to the token that opened it
            basic = base64.b64encode(
                f"{self._credentials.client_id}:{self._credentials.client_secret.reveal()}".encode()
            ).decode()
            self.token_requests += 1
            response = yield httpx2.Request(
                "POST",
                self._base_url + TOKEN_PATH,
                headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                data={"grant_type": "client_credentials"},
            )
            if not response.is_success:
                raise self._refuse(response, "OAuth token request")
            data = self._json(response, "OAuth token")
            token, expires_in = data.get("access_token"), data.get("expires_in", 3600)
            if not isinstance(token, str) or not token:
                raise self._refuse_shape(response, "OAuth token answer has no access_token")
            if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
                expires_in = 3600
            self._token, self._token_expires_at = Secret(token), self._clock() + float(expires_in)
        if not self._session_valid():
            assert self._token is not None
            self.logins += 1
            response = yield httpx2.Request(
                "POST",
                self._base_url + LOGIN_PATH,
                headers={"Authorization": f"Bearer {self._token.reveal()}", "Accept": "application/json"},
                json={"username": self._credentials.username, "password": self._credentials.password.reveal()},
            )
            if not response.is_success:
                raise self._refuse(response, f"session login of user {self._credentials.username!r}")
            session = self._json(response, "session login").get("sessionToken")
            if not isinstance(session, str) or not session:
                raise self._refuse_shape(response, "session login answer has no sessionToken")
            self._session, self._session_last_used = Secret(session), self._clock()
            self._generation += 1
            if self._stale_record:  # these credentials work: an old refusal of others is moot
                from tskit import _refusals

                _refusals.forget(self._base_url, self._credentials)
                self._stale_record = False
            logger.info("logged in to ThingSpace as %r", self._credentials.username)

    def _refuse_shape(self, response: httpx2.Response, problem: str) -> AuthenticationError:
        return AuthenticationError(
            response.status_code, "", problem, method=response.request.method, path=response.request.url.path
        )

    def _apply(self, request: httpx2.Request) -> int:
        assert self._token is not None and self._session is not None
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        request.headers["VZ-M2M-Token"] = self._session.reveal()
        return self._generation

    def _needs_new_login(self, response: httpx2.Response, generation: int) -> bool:
        """After a call: note the session's use, and drop what ThingSpace says is no longer valid."""
        expired_session = (
            response.status_code in (400, 401, 403)
            and b"SessionToken" in response.content  # cheap test first; then only the error code counts
            and ".SessionToken." in parse_error_body(response.content)[0]
        )
        if response.status_code != 401 and not expired_session:
            if generation == self._generation:
                self._session_last_used = self._clock()
            return False
        if generation == self._generation:  # else a concurrent call already logged in again
            logger.info("ThingSpace answered %s; logging in again", response.status_code)
            self._session = None
            if response.status_code == 401 and not expired_session:
                self._token = None
        return True

    # -- drivers: the same steps under a thread lock or a per-loop asyncio lock ----------

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        """Drive the flow for ``httpx2.Client``."""
        for attempt in (1, 2):
            with self._thread_lock:
                steps = self._login_steps()
                try:
                    step = next(steps)
                    while True:
                        reply = yield step
                        reply.read()
                        step = steps.send(reply)
                except StopIteration:
                    pass
                generation = self._apply(request)
            response = yield request
            response.read()
            if not self._needs_new_login(response, generation) or attempt == 2:
                return

    def _loop_lock(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop; a notebook and a script may use several.
        loop = asyncio.get_running_loop()
        lock = self._loop_locks.get(loop)
        if lock is None:
            lock = self._loop_locks[loop] = asyncio.Lock()
        return lock

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """Drive the flow for ``httpx2.AsyncClient``."""
        for attempt in (1, 2):
            if not (self._token_valid() and self._session_valid() and self._refused is None):
                async with self._loop_lock():
                    steps = self._login_steps()
                    try:
                        step = next(steps)
                        while True:
                            reply = yield step
                            await reply.aread()
                            step = steps.send(reply)
                    except StopIteration:
                        pass
            generation = self._apply(request)
            response = yield request
            await response.aread()
            if not self._needs_new_login(response, generation) or attempt == 2:
                return
