"""ThingSpace's two-step authentication as an ``httpx2.Auth`` flow, over the identity's shared session.

Every Connectivity Management call needs an OAuth2 bearer token (client credentials, valid one
hour) *and* an M2M session token from ``POST /api/m2m/v1/session/login`` (expires after 20 minutes
without use). :class:`ThingSpaceAuth` attaches both, taken from the session that the identity
(base URL, application key, user) has in this process (``tskit._session``), and logs in again
once when ThingSpace answers 401 or 403 or says the session token expired.

Rules that keep accounts safe (ThingSpace locks a user after five failed logins):

* one login at a time per identity, in the whole process: every other caller, on any thread or
  event loop, waits for its outcome; and one at a time across processes (a file lock);
* a refusal (wrong credentials) is never tried again with the same credentials, in this process
  or any later one (``tskit._refusals``), until :meth:`ThingSpaceAuth.reset` or
  ``tskit reset-login``;
* a throttled login (429, the gateway's ``9008xx``) is waited out by every call whose deadline
  leaves room, with jitter, then one login serves them all; the wait is shared with other
  processes (``tskit._refusals``); a call with too little time left fails at once
  (:class:`~tskit.LoginThrottled`);
* any other failed login is handed to its waiters once; new calls then fail at once for a short
  cooldown (``Retry-After`` when the answer gave one) instead of each trying again;
* no wait lasts longer than ``timeout``: a call then fails naming what it waited for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Literal, NamedTuple, TypeVar

import httpx2
from filelock import FileLock
from filelock import Timeout as LockTimeout

from tskit import _session
from tskit._config import LOGIN_PATH, TOKEN_PATH, Credentials
from tskit._errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    LoginThrottled,
    Reason,
    Remedy,
    RequestTimeout,
    ThingSpaceError,
    error_from_response,
    parse_error_body,
    scrub,
)
from tskit._fingerprint import CONFIG_DIR_ENV
from tskit._secret import Secret
from tskit._session import Cooldown, Grant, IdentitySession, Login, LoginAbandoned, ThrottleWait

logger = logging.getLogger("tskit.auth")

#: The ``time.monotonic()`` by which the call in progress (in this task) must end: set by the client
#: for each call, so that waits for a login, the login lock and the login itself share its timeout.
CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("tskit_call_deadline", default=None)

#: The request extension that marks a token request or login, with the :class:`Login` it serves.
LOGIN_EXTENSION = "tskit.login"
#: Largest answer to a token request or login that is read (a real one is well under 1 kB).
MAX_LOGIN_ANSWER = 1_000_000

Steps = Generator["httpx2.Request | _Record", Any, Grant]
E = TypeVar("E", bound=ThingSpaceError)


class ThingSpaceAuth(httpx2.Auth):
    """OAuth2 client-credentials token plus M2M session token, for ``httpx2`` clients.

    Works with both ``httpx2.Client`` and ``httpx2.AsyncClient``. Every ``ThingSpaceAuth`` of the
    same identity in a process shares one token, one session and one login at a time.

    Args:
        credentials: Application key and secret, UWS user name and password.
        base_url: The ThingSpace host root, e.g. ``"https://thingspace.verizon.com"``.
        session_idle_timeout: Seconds of inactivity after which ThingSpace drops a session.
        margin: Seconds before a token's or session's end at which a new one is fetched.
        clock: Monotonic clock in seconds; tests pass a fake one.
        remember_refusals: Keep tskit's records on disk, shared by every process: refused logins
            (the same credentials are not tried again in any later run: a cron job would otherwise
            lock the user on its fifth run), the count of failed logins in a row, and the login
            lock. ``False`` turns all three off; see ``tskit._refusals``.
        timeout: Longest wait, in seconds, for a login that another call, thread or process
            is doing for the same identity.
        realm: The in-process server these credentials are for, if any (the embedded simulator):
            two in-process servers are two ThingSpaces, with sessions of their own.
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
        timeout: float = 30.0,
        realm: object = None,
    ) -> None:
        self._credentials = credentials
        self._remember = remember_refusals
        self._base_url = base_url.rstrip("/")
        self._idle_timeout = session_idle_timeout
        self._margin = margin
        self._clock = clock
        self._timeout = timeout
        self._realm = realm
        self._identity: IdentitySession | None = None

    def __repr__(self) -> str:
        grant = self.session.grant
        state = "refused" if self.refused else ("session" if grant and grant.session else "no session")
        return f"<ThingSpaceAuth user={self._credentials.username!r} {state}>"

    # -- what callers see -----------------------------------------------------------------

    @property
    def session(self) -> IdentitySession:
        """The session of this identity, shared by every connection of the process."""
        if self._identity is None:
            self._identity = _session.session_for(self._base_url, self._credentials, self._realm)
        return self._identity

    def bind_realm(self, realm: object) -> None:
        """Tie a not yet used flow to an in-process server (done by ``ThingSpaceClient``)."""
        if self._identity is None and self._realm is None:
            self._realm = realm

    @property
    def username(self) -> str:
        """The UWS user this flow logs in as."""
        return self._credentials.username

    @property
    def logins(self) -> int:
        """Session logins sent for this identity in this process (for monitoring and tests)."""
        return self.session.logins

    @property
    def token_requests(self) -> int:
        """OAuth token requests sent for this identity in this process (for monitoring and tests)."""
        return self.session.token_requests

    @property
    def refused(self) -> ApiError | None:
        """The refusal of these credentials that blocks further logins, if any."""
        refused = self.session.refused
        return refused[1] if refused is not None and refused[0] == self._credentials else None

    @property
    def has_session(self) -> bool:
        """Whether an M2M session is open for this identity."""
        grant = self.session.grant
        return grant is not None and grant.session is not None

    def forget_session(self) -> None:
        """Drop the current M2M session (after a logout); the next call logs in again."""
        grant = self.session.grant
        if grant is not None:
            self.session.drop(grant, token=False, session=True)

    def secret_values(self) -> tuple[str, ...]:
        """Every secret this flow holds, for scrubbing texts a server sends back."""
        grant = self.session.grant
        held = [s.reveal() for s in (grant.token, grant.session) if s] if grant else []
        return (*self._credentials.secret_values(), *held)

    def reset(self, credentials: Credentials | None = None) -> None:
        """Forget tokens, any refused login and any cooldown, optionally with new credentials.

        Call this after fixing credentials that ThingSpace refused; until then no login is tried.
        """
        self.session.reset()
        if credentials is not None:
            if credentials != self._credentials:
                self._identity = None  # other credentials: a session of their own
            self._credentials = credentials

    # -- deciding: use the grant, wait for the login in progress, or lead one ------------

    def _usable(self, grant: Grant | None, now: float) -> bool:
        return (
            grant is not None
            and grant.token is not None
            and grant.session is not None
            and now < grant.token_renew_at
            and now - self.session.last_used < self._idle_timeout - self._margin
        )

    def _decide(self, waited: Cooldown | None = None) -> Grant | _Wait | _Throttled | Login:
        """Use the grant, wait for the login in progress or a throttle, or lead a login.

        ``waited`` is the throttle this call has waited out already: it no longer holds it back.
        """
        session, now = self.session, self._clock()
        with session.lock:
            grant = session.grant
            if grant is not None and self._usable(grant, now):
                return grant
            if session.login is not None and not session.login.leader_gone():
                return _Wait(session.login, 0.0)
            if session.login is not None:  # its leader is gone: release its waiters, lead it here
                gone, session.login = session.login, None
                _release(gone)
            if session.refused is not None and session.refused[0] == self._credentials:
                raise self._not_sent(session.refused[1])
            cooldown = session.cooldown
            if cooldown is not None and now < cooldown.until and cooldown is not waited:
                if cooldown.throttled:
                    return _Throttled(cooldown, cooldown.until - now)
                raise _copy(
                    cooldown.error,
                    f"Not sent: a login as {self.username!r} has just failed; tskit tries again in "
                    f"{cooldown.until - now:.1f} s (cooldown), not once per waiting call",
                )
            login = session.login = Login(self._credentials)
            return login

    def _not_sent(self, refusal: ApiError) -> AuthenticationError:
        error = AuthenticationError(
            refusal.status_code,
            refusal.error_code,
            refusal.error_message,
            method=refusal.method,
            path=refusal.path,
            remedy=Remedy("reset-login"),
        )
        error.args = (
            f"Not sent: an earlier {'token request' if refusal.path.endswith(TOKEN_PATH) else 'login'} with these "
            f"credentials was refused (ThingSpace answered {refusal.status_code}"
            f"{': ' + refusal.error_code if refusal.error_code else ''}) and is not retried.",
        )
        return error

    def _waited(self, what: str) -> RequestTimeout:
        return RequestTimeout(
            f"waited {self._timeout:g} s for {what} of user {self.username!r}; gave up", method="POST", path=LOGIN_PATH
        )

    # -- leading a login (sans-I/O steps) ---------------------------------------------

    def _failed(self, login: Login, error: ThingSpaceError, retry_after: float | None = None) -> ThingSpaceError:
        """Hand a failed login to every waiter, and remember it as a refusal or a cooldown."""
        now = self._clock()
        token_request = isinstance(error, ApiError) and error.path.endswith(TOKEN_PATH)
        kind = _session.login_failure(error, token_request=token_request) if isinstance(error, ApiError) else None
        if login.counted is not None and isinstance(error, ApiError) and not token_request and error.status_code >= 400:
            # The login was counted before it was sent: its answer says whether it stays counted.
            login.settle = ("not judged",) if kind == "passing" else ("failed", error.status_code, error.error_code)
        if isinstance(error, ApiError) and kind == "refusal":
            self.session.refuse(login.credentials, error)
            if self._remember:  # written off the event loop, before the login lock is released
                login.record = (error.status_code, error.error_code)
        elif not isinstance(error, LoginAbandoned):
            throttled = isinstance(error, ApiError) and self._throttled(error)
            if throttled:
                with self.session.lock:
                    self.session.throttles += 1
                    wait = _session.throttle_wait(retry_after, self.session.throttles)
            else:
                wait = min(retry_after if retry_after is not None else _session.COOLDOWN, _session.MAX_COOLDOWN)
            self.session.cool_down(error, now + wait, throttled=throttled)
            if (throttled or retry_after is not None) and self._remember:  # other processes wait too
                login.throttled_until = time.time() + wait
        self.session.finish(login, error, now)
        return error

    def login_failed(self, login: Login, error: ThingSpaceError, *, reached: bool = True) -> ThingSpaceError:
        """The token request or login of ``login`` got no answer: hand ``error`` to its waiters.

        ``reached`` is whether the request may have reached ThingSpace: a login that never left
        (no connection) is taken back from the user's count of failed logins.

        Returns:
            The error for the caller that led the login to raise: ``error`` with what it means.
        """
        if not reached and login.counted is not None:
            login.counted = None
            from tskit import _refusals

            try:
                _refusals.settle_login(self._base_url, login.credentials, "not judged")
            except (OSError, ValueError, LockTimeout) as problem:  # it stays counted: the safe side
                logger.error("could not update the record of failed logins: %s", problem)
        note = "the login got no answer; not tried again at once"
        if login.counted is not None and login.worked_before:
            note += ". These credentials logged in before, so it is not counted as a failed login"
        elif login.counted is not None:
            note += (
                f". tskit cannot tell whether ThingSpace judged it, so it counts as failed login {login.counted} of "
                "the 3 in a row that tskit allows for this user (a login that works starts the count again)"
            )
        if not login.future.done():
            self._failed(login, _copy(error, note))
        return _copy(error, note)

    def _broken(self, login: Login, problem: BaseException) -> None:
        """The answer to the token request or login broke off mid-body: hand that to every waiter."""
        from tskit._transport import as_tskit_error

        failed = getattr(problem, "_request", None)
        method, path = (failed.method, failed.url.path) if isinstance(failed, httpx2.Request) else ("POST", LOGIN_PATH)
        error, _ = as_tskit_error(problem, method=method, path=path, timeout=f"{self._timeout:g} s")
        self.login_failed(login, error)

    def _refusal(self, login: Login, response: httpx2.Response, what: str) -> ThingSpaceError:
        creds = login.credentials
        error = error_from_response(
            response.status_code,
            response.content,
            method=response.request.method,
            path=response.request.url.path,
            reason=response.reason_phrase,
            secrets=(*creds.secret_values(), *self.secret_values()),
            cls=AuthenticationError,
            retry_after=response.headers.get("Retry-After"),
        )
        token_request = response.request.url.path.endswith(TOKEN_PATH)
        note = _refusal_note(
            error,
            what,
            token_request=token_request,
            recorded=self._remember,
            failures=login.counted,
        )
        error = _copy(error, note)
        if _session.login_failure(error, token_request=token_request) == "refusal" and not token_request:
            error.remedy = None if error.reason == Reason.USER_LOCKED else Remedy("fix-credentials")
        logger.info("%s failed with status %s", what, response.status_code)  # the error says it all
        old = self.session.grant
        if old is not None and response.status_code == 401 and not token_request:
            self.session.drop(old, token=True, session=True)  # the bearer was refused: a new one next time
        return self._failed(login, error, retry_after=error.retry_after)

    def _json(self, login: Login, response: httpx2.Response, what: str) -> dict[str, Any]:
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._failed(
                login,
                AuthenticationError(
                    response.status_code,
                    "",
                    f"the {what} answer is not a JSON object: {scrub(response.text, self.secret_values())!r}",
                    method=response.request.method,
                    path=response.request.url.path,
                ),
            )
        return data

    def _shape(self, login: Login, response: httpx2.Response, problem: str) -> ThingSpaceError:
        return self._failed(
            login,
            AuthenticationError(
                response.status_code, "", problem, method=response.request.method, path=response.request.url.path
            ),
        )

    def _check_disk(self, login: Login) -> bool:
        """Under the login lock: refuse at once what an earlier run learnt should not be sent.

        That is: exactly these credentials were refused, or a throttle's wait is not over (the
        flow then waits it out, or fails at once if the call's deadline is too short for it).

        Returns:
            Whether a refusal of this user with other secrets is on record (to forget on success).
        """
        if not self._remember:
            return False
        from tskit import _refusals

        try:
            earlier = _refusals.refused_before(self._base_url, login.credentials)
            stale = earlier is None and _refusals.recorded(self._base_url, login.credentials)
            throttled = _refusals.throttled_until(self._base_url, login.credentials)
        except (OSError, ValueError) as problem:
            logger.warning("could not read the record of refused logins: %s", problem)
            return False
        if earlier is None and throttled is not None:  # waited out by the flow, or too long for the call
            wait = throttled - time.time()
            error = AuthenticationError(429, "", "", method="POST", path=LOGIN_PATH, retry_after=wait)
            error.args = (
                f"Not sent: ThingSpace throttled a login of user {self.username!r} from another process or run "
                f"and asked to wait; tskit logs in again in {wait:.0f} s",
            )
            self.session.cool_down(error, self._clock() + wait, throttled=True, shared=True)
            self.session.finish(login, error, self._clock())
            raise error
        if earlier is not None:
            code = str(earlier.get("error_code") or "")
            token = code in _session.TOKEN_REFUSALS
            error = AuthenticationError(
                int(earlier.get("status_code") or 0),
                code,
                "",
                method="POST",
                path=TOKEN_PATH if token else LOGIN_PATH,
            )
            what = "the OAuth token request (application key and secret)" if token else "a login with these credentials"
            locked = "locked" in code.lower()
            fix = (
                "Fix the application secret"
                if token
                else "Have Verizon support unlock the user"
                if locked
                else "Fix the password"
            )
            error.args = (
                f"Not sent: {what} was refused at {earlier.get('at')} by another process or run "
                f"(ThingSpace answered {error.status_code}{': ' + code if code else ''}). tskit does not try the "
                f"same credentials again from any run. {fix}, then run `tskit reset-login`"
                + ("" if token or locked else " once the user can log in again (a locked user: Verizon support first)"),
            )
            self.session.refuse(login.credentials, error)
            self.session.finish(login, error, self._clock())
            raise error
        return stale

    def _login_steps(self, login: Login, request: httpx2.Request) -> Steps:
        """Yield the token request and the login, whichever are needed; return the new grant.

        They carry the timeouts of ``request``, the call they are made for.
        """
        session, creds, now = self.session, login.credentials, self._clock()
        with session.lock:
            old = session.grant
            idle = now - session.last_used
        token, expires_at, renew_at = (old.token, old.token_expires_at, old.token_renew_at) if old else (None, 0.0, 0.0)
        previous = token
        if token is not None and now >= renew_at:
            token = None
        # A renewed token keeps a session that is still valid: each hour would otherwise cost a login.
        kept = old.session if old is not None and idle < self._idle_timeout - self._margin else None
        ext = {LOGIN_EXTENSION: login}
        if "timeout" in request.extensions:  # requests made here get none from the client
            ext["timeout"] = request.extensions["timeout"]
        if token is None:
            _still_leading(login)
            basic = creds.basic_authorization()
            session.token_requests += 1
            response = yield httpx2.Request(
                "POST",
                self._base_url + TOKEN_PATH,
                headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                data={"grant_type": "client_credentials"},
                extensions=_within_deadline(ext, "the OAuth token request"),
            )
            if not response.is_success:
                raise self._refusal(login, response, "OAuth token request")
            data = self._json(login, response, "OAuth token")
            raw, expires_in = data.get("access_token"), data.get("expires_in", 3600)
            if not isinstance(raw, str) or not raw:
                raise self._shape(login, response, "OAuth token answer has no access_token")
            if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
                expires_in = 3600
            token, expires_at = Secret(raw), self._clock() + float(expires_in)
            renew_at = _renewal(expires_at, float(expires_in), self._margin, same=previous == token)
        if kept is not None:
            return Grant(token, expires_at, kept, renew_at)
        with session.lock:
            # Kept before the login is sent: a failed login leaves a valid token for the next one,
            # and the token is then among the secrets scrubbed from the login's error.
            session.grant = Grant(token, expires_at, None, renew_at)
        _still_leading(login)
        if self._remember:  # counted before it is sent: lost on the way, or a crash, it still counts
            yield from self._count_login(login)
        session.logins += 1
        # A login that fails below HTTP ends this generator; tskit's client then says whether it
        # may have reached ThingSpace (``login_failed``), and one that never left is taken back.
        response = yield httpx2.Request(
            "POST",
            self._base_url + LOGIN_PATH,
            headers={"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json"},
            json={"username": creds.username, "password": creds.password.reveal()},
            extensions=_within_deadline(ext, "the session login"),
        )
        if login.counted is not None:
            login.settle = ("worked",) if response.is_success else login.settle
        if not response.is_success:
            raise self._refusal(login, response, f"session login of user {creds.username!r}")
        raw_session = self._json(login, response, "session login").get("sessionToken")
        if not isinstance(raw_session, str) or not raw_session:
            raise self._shape(login, response, "session login answer has no sessionToken")
        logger.info("logged in to ThingSpace as %r", creds.username)
        return Grant(token, expires_at, Secret(raw_session), renew_at)

    def _count_login(self, login: Login) -> Generator[_Record, None, None]:
        """Count the login about to be sent toward the user's failed logins in a row (off the loop).

        Raises:
            AuthenticationError: The user's failed logins in a row reached the limit: not sent.
            ConfigurationError: The count cannot be kept: not sent, rather than risk a lockout.
        """
        from tskit import _refusals

        base_url, creds, reserved = self._base_url, login.credentials, [(0, False)]

        def reserve() -> None:
            reserved[0] = _refusals.reserve(base_url, creds)

        try:
            yield _Record(reserve)
        except _refusals.TooManyFailedLogins as full:
            raise self._too_many(login, full.entry) from None
        except (OSError, ValueError, LockTimeout) as problem:
            error = ConfigurationError(
                CONFIG_DIR_ENV,
                f"tskit cannot count the logins of user {self.username!r} in its record of failed logins "
                f"({scrub(str(problem))}), so it sends none: ThingSpace locks a user after 5 failed logins",
                "a config folder this user can write; run `tskit reset-login` to set a damaged record aside",
            )
            self.session.finish(login, error, self._clock())
            raise error from None
        login.counted, login.worked_before = reserved[0]
        login.settle = ("no answer",)  # until an answer says otherwise: a login lost on the way may count

    def _too_many(self, login: Login, entry: dict[str, Any]) -> AuthenticationError:
        """The error of a login not sent because the user's failed logins in a row reached the limit."""
        from tskit import _refusals

        code = str(entry.get("error_code") or "")
        status = entry.get("status_code")
        answer = f"ThingSpace answered {status}{': ' + code if code else ''}" if status else "it got no usable answer"
        error = AuthenticationError(int(status or 0), code, "", method="POST", path=LOGIN_PATH)
        error.args = (
            f"Not sent: {entry.get('count', _refusals.MAX_FAILED_LOGINS)} logins of user {self.username!r} in a row "
            f"failed or got no usable answer (the last at {entry.get('at')}: {answer}). ThingSpace locks a user "
            "after 5 failed logins, so tskit sends no more for this user from any run. Check the user name and "
            "password, then run `tskit reset-login` to allow logins again (a user ThingSpace already locked, "
            "through other tools too, needs Verizon support first)",
        )
        # Not remembered in this process: each new call checks the record again, so a
        # `tskit reset-login` run elsewhere is seen without reconnecting.
        self.session.finish(login, error, self._clock())
        return error

    def _succeeded(self, login: Login, grant: Grant, stale_record: bool) -> None:
        self.session.finish(login, grant, self._clock())
        if stale_record and login.settle == ("worked",):  # these credentials logged in: an old refusal is moot
            login.forget_refusal = True

    def _lock(self, login: Login) -> FileLock | None:
        if not self._remember:
            return None
        from tskit import _refusals

        try:
            return _refusals.login_lock(self._base_url, login.credentials)
        except (OSError, ConfigurationError) as problem:
            raise self._unlocked(login, problem) from None

    def _record_then_release(self, login: Login, lock: FileLock) -> Callable[[], None]:
        """What writes the refusal ``login`` got to the record, then releases the login lock.

        The record's own file lock may be held by another process for a while: the async driver
        runs this in a worker thread, never on the event loop, so no other call waits for it.
        """
        record, until, settle = login.record, login.throttled_until, login.settle
        forget = login.forget_refusal
        base_url, credentials = self._base_url, login.credentials

        def write() -> None:
            from tskit import _refusals

            try:
                if settle is not None:
                    _refusals.settle_login(base_url, credentials, *settle)
                if forget:
                    _refusals.forget_refusal(base_url, credentials)
                if record is not None:
                    _refusals.remember(base_url, credentials, *record)
                if until is not None:
                    _refusals.throttle(base_url, credentials, until)
            except (OSError, ValueError, LockTimeout) as problem:  # the refusal still reaches the caller
                logger.error("could not update the record of refused and failed logins: %s", problem)
            finally:
                lock.release()

        return write

    def _unlocked(self, login: Login, problem: Exception) -> ConfigurationError:
        """No login lock can be had: refuse to log in (N processes without it could lock the user)."""
        error = ConfigurationError(
            CONFIG_DIR_ENV,
            f"cannot hold the login lock ({problem})",
            "a folder this user can write; tskit does not log in without the lock (5 failed logins lock the user)",
        )
        self.session.finish(login, error, self._clock())
        return error

    def _lock_timeout(self, login: Login) -> ThingSpaceError:
        error = self._waited("another process's login (its lock file)")
        self.session.finish(login, error, self._clock())
        return error

    # -- after a call ----------------------------------------------------------------

    def _apply(self, request: httpx2.Request, grant: Grant) -> None:
        request.extensions.update(_within_deadline(dict(request.extensions), "the call itself", request.url.path))
        if grant.token is None or grant.session is None:  # cannot happen: _usable or a login made it whole
            raise AuthenticationError(0, "", "no session to send", method=request.method, path=request.url.path)
        request.headers["Authorization"] = f"Bearer {grant.token.reveal()}"
        request.headers["VZ-M2M-Token"] = grant.session.reveal()

    def _needs_new_login(self, response: httpx2.Response, grant: Grant) -> Literal["token", "login"] | None:
        """After a call: note the session's use, or drop what ThingSpace says is no longer valid.

        Returns:
            ``None`` when the answer stands, ``"token"`` when only the bearer token was refused,
            ``"login"`` when the session (or both) must be renewed.
        """
        status = response.status_code
        expired_session = (
            status in (400, 401, 403)
            and b"SessionToken" in response.content  # cheap test first; then only the error code counts
            and ".SessionToken." in parse_error_body(response.content)[0]
        )
        if status not in (401, 403) and not expired_session:
            self.session.touch(grant, self._clock())
            return None
        # The gateway's bad or expired bearer (900901) says nothing of the session: keep it.
        bearer_only = not expired_session and status == 401 and parse_error_body(response.content)[0] == "900901"
        logger.info("ThingSpace answered %s; %s", status, "renewing the token" if bearer_only else "logging in again")
        # Only if this is still the current snapshot: a late answer for an old token erases nothing.
        self.session.drop(grant, token=not expired_session, session=not bearer_only)
        return "token" if bearer_only else "login"

    # -- the flow, once, and its two drivers ------------------------------------------------

    def _lead(
        self, login: Login, request: httpx2.Request, deadline: float, on_exit: Callable[[Login], object]
    ) -> LeadSteps:
        """Lead ``login``: the login lock, the records on disk, the token request and login.

        Returns:
            The new grant, or ``None`` when the call must decide again: its login was taken over
            by another call, or was throttled (the caller then waits it out, or gives up).
        """
        try:
            return (yield from self._lead_once(login, request, deadline, on_exit))
        except ApiError as error:
            if self._throttled(error):
                return None
            raise

    def _lead_once(
        self, login: Login, request: httpx2.Request, deadline: float, on_exit: Callable[[Login], object]
    ) -> LeadSteps:
        lock, closing = self._lock(login), False
        if lock is not None:
            try:
                yield _Lock(lock, deadline)
                login.file_lock = lock
            except LockTimeout:
                raise self._lock_timeout(login) from None
            except OSError as problem:
                raise self._unlocked(login, problem) from None
            except BaseException:
                self._abandon(login)
                raise
        try:
            stale = self._check_disk(login)
            grant = yield from self._login_steps(login, request)
            self._succeeded(login, grant, stale)
            return grant
        except GeneratorExit:  # a request failed below HTTP, or the call was cancelled
            closing = True
            on_exit(login)
            raise
        except _TakenOver:  # this leader's loop stopped and another call took over: wait for it
            return None
        except AuthenticationError as error:  # the answer was unusable (too large)
            if not login.future.done():
                self._failed(login, error)
            raise
        except _BROKEN_ANSWER as broken:  # the answer broke off mid-body: a failed login, not abandoned
            self._broken(login, broken)
            raise
        except BaseException:  # anything else still releases the waiters
            self._abandon(login)
            raise
        finally:
            if lock is not None and login.file_lock is lock:
                login.file_lock = None
                if login.record is None and login.throttled_until is None and login.settle is None:
                    lock.release()
                elif closing:  # a closing generator cannot yield: a thread of its own writes it
                    threading.Thread(target=self._record_then_release(login, lock), name="tskit-record").start()
                else:  # the driver runs it off the event loop; the refusal is raised after it
                    yield _Record(self._record_then_release(login, lock))

    @staticmethod
    def _throttled(error: ApiError) -> bool:
        """Whether a failed token request or login was throttled: a reason to wait, never a failure."""
        return _session.is_throttle(error, token_request=error.path.endswith(TOKEN_PATH))

    def _wait_out(self, throttled: _Throttled, deadline: float) -> Generator[_Sleep, None, Cooldown]:
        """Wait out a throttle, with jitter, or fail at once when the call's deadline is too short for it.

        Returns:
            The throttle waited out, which this call then no longer heeds.

        Raises:
            LoginThrottled: The wait is longer than what is left of the call's deadline.
        """
        cooldown, wait = throttled.cooldown, throttled.wait
        left = deadline - time.monotonic()
        if wait >= left:
            error = cooldown.error
            if not isinstance(error, ApiError):  # cannot happen: throttles are answers
                error = ApiError(429, "", "", method="POST", path=LOGIN_PATH)
            raise LoginThrottled(
                error, username=self.username, retry_after=wait, time_left=left, shared=cooldown.shared
            ) from None
        pause = wait + min(_session.jitter(wait), (left - wait) / 2)
        if self.session.first_to_announce(cooldown):
            logger.info("ThingSpace asked to wait %.1f s before the next login of %r; waiting", wait, self.username)
            _session.announce_wait(ThrottleWait(self.username, wait, left))
        yield _Sleep(pause)
        return cooldown

    def _flow(self, request: httpx2.Request, deadline: float, on_exit: Callable[[Login], object]) -> Flow:
        """Every decision of the auth flow, sans I/O: it yields what to do, a driver does it.

        It yields a request to send (the driver sends back the read response), a :class:`_Wait`
        for a login in progress (back: its grant, or its error thrown in), a :class:`_Lock` to
        take (back: ``None``, or the error thrown in), a :class:`_Record` to write or a
        :class:`_Sleep` to wait a throttle out. ``on_exit`` runs on a login cut short.
        """
        token_renewed = resent = False
        waited: Cooldown | None = None  # the throttle this call has waited out already
        while True:
            while True:
                decision = self._decide(waited)
                if isinstance(decision, Grant):
                    grant = decision
                    break
                if isinstance(decision, _Throttled):
                    waited = yield from self._wait_out(decision, deadline)
                    continue
                if isinstance(decision, _Wait):
                    try:
                        grant = yield decision._replace(deadline=deadline)
                    except LoginAbandoned:
                        continue  # its leader stopped: lead it, or wait for whoever does
                    except TimeoutError:
                        raise self._waited("the login in progress in another call") from None
                    except ApiError as error:
                        if self._throttled(error):
                            continue  # a reason to wait, not a failure: decide again
                        raise
                    break
                led = yield from self._lead(decision, request, deadline, on_exit)
                if led is None:
                    continue
                grant = led
                break
            self._apply(request, grant)
            response = yield request
            need = self._needs_new_login(response, grant)
            if need is None:
                return
            if need == "token" and not token_renewed:  # a new token only: it does not use up the retry
                token_renewed = True
                continue
            if resent:
                return
            resent = True

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        """Drive the flow for ``httpx2.Client``: waits block the calling thread."""
        flow = self._flow(request, time.monotonic() + self._timeout, on_exit=self._abandon)
        action: Action | None = next(flow)
        while action is not None:
            result: object = None
            error: BaseException | None = None
            try:
                if isinstance(action, httpx2.Request):
                    result = yield action
                    _read(result)
                elif isinstance(action, _Wait):
                    result = action.wait()
                elif isinstance(action, _Record):
                    action.write()
                elif isinstance(action, _Sleep):
                    time.sleep(action.seconds)
                else:
                    action.lock.acquire(timeout=action.remaining())
            except GeneratorExit:
                flow.close()
                raise
            except BaseException as problem:
                error = problem
            action = _advance(flow, result, error)

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """Drive the flow for ``httpx2.AsyncClient``: waits suspend the task, never the loop."""
        loop = asyncio.get_running_loop()

        # A request of the login failed below HTTP: tskit's client hands its error to the waiters
        # (login_failed) first; only if nobody did, the waiters are released to lead it anew.
        def on_exit(login: Login) -> None:
            try:
                loop.call_soon_threadsafe(self._abandon, login)
            except RuntimeError:  # the loop is closed: end it here (a stopped one is seen by the waiters)
                self._abandon(login)

        flow = self._flow(request, CALL_DEADLINE.get() or time.monotonic() + self._timeout, on_exit=on_exit)
        action: Action | None = next(flow)
        while action is not None:
            result: object = None
            error: BaseException | None = None
            try:
                if isinstance(action, httpx2.Request):
                    response = yield action
                    if LOGIN_EXTENSION in action.extensions:
                        await _read_capped(response)
                    else:
                        await response.aread()
                    result = response
                elif isinstance(action, _Wait):
                    result = await action.await_()
                elif isinstance(action, _Record):
                    # in a thread: a record lock held elsewhere never stalls the loop (a cancelled
                    # call leaves the thread to finish and release the login lock)
                    await asyncio.to_thread(action.write)
                elif isinstance(action, _Sleep):
                    await asyncio.sleep(action.seconds)
                else:
                    await _acquire(action.lock, action.deadline)
            except GeneratorExit:
                flow.close()
                raise
            except BaseException as problem:
                error = problem
            action = _advance(flow, result, error)

    def _abandon(self, login: Login) -> None:
        if not login.future.done():
            self._failed(login, LoginAbandoned("the call leading the login stopped before an answer"))


#: Seconds between checks, while waiting for a login, that its leader is still there.
_LEADER_CHECK = 0.25


class _Wait(NamedTuple):
    """Wait for the login in progress, until ``deadline`` (``time.monotonic``).

    A leader whose loop stopped or whose thread ended never ends its login: the waiter then
    releases it (:class:`LoginAbandoned`), and the flow leads a login of its own or waits again.
    """

    login: Login
    deadline: float

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def _check(self) -> None:
        if self.login.leader_gone():
            _release(self.login)
        elif self.remaining() <= 0:
            raise TimeoutError

    def wait(self) -> Grant:
        """Block the calling thread until the outcome."""
        while True:
            try:
                return self.login.future.result(timeout=min(_LEADER_CHECK, self.remaining()))
            except concurrent.futures.TimeoutError:
                self._check()

    async def await_(self) -> Grant:
        """Suspend the calling task until the outcome."""
        outcome = asyncio.wrap_future(self.login.future)
        outcome.add_done_callback(_retrieved)  # a waiter that gave up leaves no "never retrieved"
        while True:
            try:
                # shield: giving up must not cancel the login that other callers wait for
                return await asyncio.wait_for(asyncio.shield(outcome), min(_LEADER_CHECK, self.remaining()))
            except TimeoutError:
                self._check()


class _TakenOver(Exception):
    """The login this call led was taken over by another call while this one's loop was stopped."""


def _still_leading(login: Login) -> None:
    """Stop a leader whose login was taken over (its loop was stopped, then ran again)."""
    if login.future.done():
        raise _TakenOver


def _release(login: Login) -> None:
    """End a login whose leader is gone, straight on its thread-safe future: its waiters take over."""
    lock, login.file_lock = login.file_lock, None
    if lock is not None:  # held by a leader that will not release it: the caller taking over needs it
        with contextlib.suppress(OSError):
            lock.release(force=True)
    if not login.future.done():
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            login.future.set_exception(LoginAbandoned("the call leading the login stopped before an answer"))


class _Lock(NamedTuple):
    """Take the cross-process login lock, until ``deadline`` (``time.monotonic``)."""

    lock: FileLock
    deadline: float

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


class _Record(NamedTuple):
    """Write a refusal to the record on disk, then release the login lock (blocking file I/O)."""

    write: Callable[[], None]


class _Sleep(NamedTuple):
    """Wait out a throttle: sleep (block the thread, or suspend the task) for ``seconds``."""

    seconds: float


class _Throttled(NamedTuple):
    """ThingSpace throttled logins: ``wait`` more seconds (the identity's clock) before the next one."""

    cooldown: Cooldown
    wait: float


Action = httpx2.Request | _Wait | _Lock | _Record | _Sleep
#: What reading a broken answer raises (cut short, bad chunking, bad gzip): httpx2's errors below HTTP.
_BROKEN_ANSWER = (httpx2.HTTPError, httpx2.StreamError)
Flow = Generator[Action, Any, None]
LeadSteps = Generator[Action, Any, Grant | None]


def _advance(flow: Flow, result: object, error: BaseException | None) -> Action | None:
    """The flow's next action after ``result`` (or ``error`` thrown into it); ``None`` once it ended."""
    try:
        return flow.throw(error) if error is not None else flow.send(result)
    except StopIteration:
        return None


def _refusal_note(
    error: ApiError, what: str, *, token_request: bool, recorded: bool, failures: int | None = None
) -> str:
    """What a failed token request or login means for the user, and what to do.

    ``failures`` is the user's failed logins in a row counting this one, when they are on record.
    """
    kind = _session.login_failure(error, token_request=token_request)
    if kind == "uncertain":
        from tskit._refusals import MAX_FAILED_LOGINS as limit

        count = (
            f"{_where_the_count_stands(failures)}; after {limit}, no run sends another until `tskit reset-login`."
            if failures is not None
            else ""
        )
        return (
            f"The {what} failed with an answer tskit does not know. Verizon does not document its "
            "answer to a wrong password, so this may be one, and 5 failed logins in a row lock the user."
            f"{count} Check the user name and password; not tried again at once."
        )
    if kind == "passing":
        if error.status_code == 429 or error.error_code in _session.TRANSIENT_FAULTS:
            return f"ThingSpace throttled the {what}; tried again after the wait if the call's timeout allows"
        return f"The {what} failed for a passing reason; not tried again at once"
    later = (
        " The refusal is recorded: later runs do not try these credentials again (corrected ones are tried) "
        "until `tskit reset-login`."
        if recorded
        else ""
    )
    if token_request:
        return (
            f"ThingSpace refused the {what}: the application key or secret is wrong; "
            f"tskit does not try again by itself.{later}"
        )
    if "locked" in error.error_code.lower():
        return (
            "The user is locked: ThingSpace refuses its logins until Verizon support unlocks it; tskit does not "
            "try again by itself. Contact Verizon support, then run `tskit reset-login`"
            + (" (until then later runs do not try again)" if recorded else "")
        )
    count = f"{_where_the_count_stands(failures)}." if failures is not None else ""
    return (
        f"ThingSpace refused the {what}; tskit does not try again by itself (5 failed logins lock the user)."
        f"{count}{later}"
    )


def _where_the_count_stands(failures: int) -> str:
    from tskit._refusals import MAX_FAILED_LOGINS

    return f" It is failed login {failures} of the {MAX_FAILED_LOGINS} in a row that tskit allows for this user"


def _within_deadline(extensions: dict[str, Any], what: str, path: str = LOGIN_PATH) -> dict[str, Any]:
    """``extensions`` with httpx2 timeouts no longer than what is left of the call's deadline.

    Raises:
        RequestTimeout: Nothing is left: ``what`` is not sent.
    """
    deadline = CALL_DEADLINE.get()
    if deadline is None:
        return extensions
    left = deadline - time.monotonic()
    if left <= 0:
        raise RequestTimeout(f"the call's timeout ran out before {what} was sent", method="POST", path=path)
    extensions["timeout"] = {"connect": left, "read": left, "write": left, "pool": left}
    return extensions


def _renewal(expires_at: float, lifetime: float, margin: float, *, same: bool) -> float:
    """When to ask for a new token, given one that expires at ``expires_at``.

    ``margin`` before its end, or half-way through a lifetime shorter than twice the margin. A
    token handed back unchanged (ThingSpace answers with the same token, its ``expires_in``
    counted down, until it expires) is used until it expires: asking again would bring it back
    again, once per call.
    """
    if same:
        return expires_at
    return expires_at - min(margin, lifetime / 2)


def _read(response: object) -> None:
    if isinstance(response, httpx2.Response):
        response.read()


async def _read_capped(response: httpx2.Response) -> None:
    """Read the answer to a token request or login, refusing one larger than :data:`MAX_LOGIN_ANSWER`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_LOGIN_ANSWER:
            await response.aclose()
            raise AuthenticationError(
                response.status_code,
                "",
                f"the answer is larger than {MAX_LOGIN_ANSWER // 1_000_000} MB: not a ThingSpace login answer",
                method=response.request.method,
                path=response.request.url.path,
            )
        chunks.append(chunk)
    response._content = b"".join(chunks)  # as aread() would have kept it


def _retrieved(future: asyncio.Future[Grant]) -> None:
    if not future.cancelled():
        future.exception()


async def _acquire(lock: FileLock, deadline: float) -> None:
    """Take a file lock without blocking the event loop: poll it until ``deadline``."""
    while True:
        try:
            lock.acquire(timeout=0)
            return
        except LockTimeout:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.02)


_MEANING = frozenset({"reason", "field", "value_shown", "remedy", "may_have_applied"})


def _copy(error: E, note: str) -> E:
    """A fresh error like ``error``, with a note: one exception object is never raised twice."""
    if isinstance(error, ApiError):
        fresh = type(error)(
            error.status_code,
            error.error_code,
            error.error_message,
            method=error.method,
            path=error.path,
            retry_after=error.retry_after,
            note=note,
        )
        fresh.__dict__.update({k: v for k, v in vars(error).items() if k in _MEANING})  # reason, remedy, ...
        return fresh
    copy = type(error).__new__(type(error))
    copy.args = error.args
    copy.__dict__.update({k: v for k, v in error.__dict__.items() if k != "__notes__"})
    copy.add_note(note)
    return copy
