"""ThingSpace's two-step authentication as an ``httpx2.Auth`` flow, over the identity's shared session.

:class:`ThingSpaceAuth` attaches the OAuth token and the M2M session token, taken from the
session the identity has in this process (``tskit.auth.coordinator``), and logs in again once
when ThingSpace answers 401 or 403 or says the session token expired.

Rules that keep accounts safe (ThingSpace locks a user after five failed logins):

* one login at a time per identity, in the whole process: every other caller, on any thread or
  event loop, waits for its outcome; and one at a time across processes (``tskit.auth.guard``);
* a refusal (wrong credentials) is never tried again with the same credentials, in this process
  or any later one, until :meth:`ThingSpaceAuth.reset` or ``tskit reset-login``;
* only a login that ThingSpace answered can count as failed: one that could not connect never
  does, whoever drives the flow;
* a throttled login (429, the gateway's ``9008xx``) is waited out by every call whose deadline
  leaves room, with jitter, then one login serves them all; a call with too little time left
  fails at once (:class:`~tskit.LoginThrottled`);
* any other failed login is handed to its waiters once; new calls then fail at once for a short
  cooldown (``Retry-After`` when the answer gave one) instead of each trying again;
* no wait lasts longer than ``timeout``: a call then fails naming what it waited for.

The flow only yields requests, as httpx2's own auth flows do: the call, and when this call leads
a login, the token request and the login (``tskit.auth.leader``). It is written once, async; a
blocking ``httpx2.Client`` steps the same flow on tskit's I/O loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import httpx2

from tskit._config import LOGIN_PATH, Credentials
from tskit._errors import (
    ApiError,
    AuthenticationError,
    LoginThrottled,
    Reason,
    Remedy,
    RequestTimeout,
    ThingSpaceError,
)
from tskit._runtime import runtime
from tskit.auth import coordinator, messages, protocol
from tskit.auth.coordinator import Cooldown, Grant, IdentitySession, Login, LoginAbandoned, ThrottleWait
from tskit.auth.leader import Closed, Leader, TakenOver
from tskit.auth.messages import copy, mark
from tskit.auth.wire import Reader, read_async, read_blocking, within

logger = logging.getLogger("tskit.auth")

#: The ``time.monotonic()`` by which the call in progress (in this task) must end: set by the client
#: for each call, so that waits for a login, the login lock and the login itself share its timeout.
CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("tskit_call_deadline", default=None)
#: Seconds between checks, while waiting for a login, that its leader is still there.
_LEADER_CHECK = 0.25


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
            lock. ``False`` turns all three off; see ``tskit.auth.guard``.
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
            self._identity = coordinator.session_for(self._base_url, self._credentials, self._realm)
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
        A refusal this process wrote to the record on disk is lifted too (one another process or
        run recorded stays, until ``tskit reset-login``).
        """
        self.session.reset()
        coordinator.lift(self.session)
        if credentials is not None:
            if credentials != self._credentials:
                self._identity = None  # other credentials: a session of their own
            self._credentials = credentials

    # -- the two drivers of the one flow ----------------------------------------------------

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The flow for ``httpx2.AsyncClient``: waits suspend the task, never the loop."""
        steps = self._flow(request, CALL_DEADLINE.get() or time.monotonic() + self._timeout, read_async, blocking=False)
        outgoing = await anext(steps)
        while True:
            try:
                response = yield outgoing
            except GeneratorExit:  # the request failed below HTTP, or the call was cancelled
                task = asyncio.current_task()
                await _close(steps, cancelled=task is not None and task.cancelling() > 0)
                raise
            try:
                outgoing = await steps.asend(response)
            except StopAsyncIteration:
                return

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        """The same flow for ``httpx2.Client``, stepped on tskit's I/O loop; answers are read in a worker thread."""
        steps = self._flow(request, time.monotonic() + self._timeout, read_blocking, blocking=True)
        outgoing = runtime.run(_step(anext(steps)))
        while True:
            try:
                response = yield outgoing
            except GeneratorExit:
                runtime.run(_close(steps, cancelled=False))
                raise
            try:
                outgoing = runtime.run(_step(steps.asend(response)))
            except StopAsyncIteration:
                return

    # -- the flow, once ----------------------------------------------------------------------

    async def _flow(
        self, request: httpx2.Request, deadline: float, read: Reader, *, blocking: bool
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """Get a grant (use it, wait for a login, or lead one), send the call, and log in again once if stale."""
        token_renewed = resent = False
        waited: Cooldown | None = None  # the throttle this call has waited out already
        while True:
            decision = self._decide(waited)
            if isinstance(decision, Cooldown):
                waited = await self._wait_out(decision, deadline)
                continue
            if isinstance(decision, _Wait):
                grant = await self._wait_for(decision.login, deadline)
                if grant is None:
                    continue  # its leader stopped, or it was throttled: decide again
            elif isinstance(decision, Login):
                leading = self._leader().lead(decision, request, deadline, read, blocking=blocking)
                try:  # each request of the login goes out through this flow; a failure below HTTP comes back in
                    outgoing = await anext(leading)
                    while True:
                        try:
                            response = yield outgoing
                        except Closed as closed:
                            outgoing = await leading.athrow(closed)
                        else:
                            outgoing = await leading.asend(response)
                except StopAsyncIteration:
                    pass
                except TakenOver:  # this leader's loop stopped and another call took over: decide again
                    continue
                except ApiError as error:
                    if _throttled(error):
                        continue  # a reason to wait, not a failure: decide again
                    raise
                grant = _granted(decision)
                if grant is None:
                    continue
            else:
                grant = decision
            self._attach(request, grant)
            response = yield request
            await read(response, False)
            need = protocol.stale(response.status_code, response.content)
            if need is None:
                self.session.touch(grant, self._clock())
                return
            bearer_only = need == "token"
            logger.info(
                "ThingSpace answered %s; %s",
                response.status_code,
                "renewing the token" if bearer_only else "logging in again",
            )
            # Only if this is still the current snapshot: a late answer for an old token erases nothing.
            expired = protocol.session_expired(response.status_code, response.content)
            self.session.drop(grant, token=not expired, session=not bearer_only)
            if bearer_only and not token_renewed:  # a new token only: it does not use up the retry
                token_renewed = True
                continue
            if resent:
                return
            resent = True

    def _leader(self) -> Leader:
        return Leader(
            session=self.session,
            credentials=self._credentials,
            base_url=self._base_url,
            remember=self._remember,
            clock=self._clock,
            margin=self._margin,
            idle_timeout=self._idle_timeout,
            timeout=self._timeout,
            secret_values=self.secret_values,
        )

    def _usable(self, grant: Grant | None, now: float) -> bool:
        return (
            grant is not None
            and grant.token is not None
            and grant.session is not None
            and now < grant.token_renew_at
            and now - self.session.last_used < self._idle_timeout - self._margin
        )

    def _decide(self, waited: Cooldown | None) -> Grant | _Wait | Cooldown | Login:
        """Use the grant, wait for the login in progress or a throttle (a :class:`Cooldown`), or lead a login.

        ``waited`` is the throttle this call has waited out already: it no longer holds it back.
        """
        session, now = self.session, self._clock()
        with session.lock:
            grant = session.grant
            if grant is not None and self._usable(grant, now):
                return grant
            if session.login is not None and not session.login.leader_gone():
                return _Wait(session.login)
            if session.login is not None:  # its leader is gone: release its waiters, lead it here
                gone, session.login = session.login, None
                _release(gone)
            if session.refused is not None and session.refused[0] == self._credentials:
                raise self._not_sent(session.refused[1])
            cooldown = session.cooldown
            if cooldown is not None and now < cooldown.until and cooldown is not waited:
                if cooldown.throttled:
                    return cooldown
                error = copy(cooldown.error, messages.cooling_down(self.username, cooldown.until - now))
                raise mark(error, Reason.LOGIN_COOLDOWN, Remedy("wait", seconds=cooldown.until - now))
            login = session.login = Login(self._credentials)
            return login

    def _not_sent(self, refusal: ApiError) -> AuthenticationError:
        error = AuthenticationError(
            refusal.status_code, refusal.error_code, refusal.error_message, method=refusal.method, path=refusal.path
        )
        token = protocol.is_token_request(refusal.path)
        error.args = (messages.refused_here(token_request=token, status=refusal.status_code, code=refusal.error_code),)
        reason = (
            refusal.reason if refusal.reason in (Reason.USER_LOCKED, Reason.LOGIN_REFUSED) else Reason.LOGIN_REFUSED
        )
        # Not sent because this process recorded the refusal: fixed credentials need that lifted too.
        locked = reason == Reason.USER_LOCKED
        mark(error, Reason(reason), messages.refusal_remedy(token_request=token, locked=locked))
        return error

    async def _wait_for(self, login: Login, deadline: float) -> Grant | None:
        """The outcome of the login in progress; ``None`` when this call must decide again.

        A leader whose loop stopped or whose thread ended never ends its login: the waiter then
        releases it (:class:`LoginAbandoned`), and decides again.
        """
        outcome = asyncio.wrap_future(login.future)
        outcome.add_done_callback(_retrieved)  # a waiter that gave up leaves no "never retrieved"
        try:
            while True:
                left = deadline - time.monotonic()
                try:
                    # shield: giving up must not cancel the login that other callers wait for
                    return await asyncio.wait_for(asyncio.shield(outcome), max(0.0, min(_LEADER_CHECK, left)))
                except TimeoutError:
                    if login.leader_gone():
                        _release(login)
                    elif left <= 0:
                        what = "the login in progress in another call"
                        error = RequestTimeout(
                            messages.waited(self._timeout, what, self.username), method="POST", path=LOGIN_PATH
                        )
                        raise mark(error, Reason.TIMEOUT, Remedy("longer-timeout")) from None
        except LoginAbandoned:
            return None  # its leader stopped: lead it, or wait for whoever does
        except ApiError as error:
            if _throttled(error):
                return None  # a reason to wait, not a failure: decide again
            raise

    async def _wait_out(self, cooldown: Cooldown, deadline: float) -> Cooldown:
        """Wait out a throttle, with jitter, or fail at once when the call's deadline is too short for it.

        Returns:
            The throttle waited out, which this call then no longer heeds.

        Raises:
            LoginThrottled: The wait is longer than what is left of the call's deadline.
        """
        wait = cooldown.until - self._clock()
        left = deadline - time.monotonic()
        if wait >= left:
            error = cooldown.error
            if not isinstance(error, ApiError):  # cannot happen: throttles are answers
                error = ApiError(429, "", "", method="POST", path=LOGIN_PATH)
            throttled = LoginThrottled(
                error,
                username=self.username,
                retry_after=wait,
                time_left=left,
                shared=cooldown.shared,
                asked=error.retry_after,
            )
            throttled.remedy = Remedy("wait", seconds=wait)
            raise throttled from None
        pause = wait + min(coordinator.jitter(wait), (left - wait) / 2)
        if self.session.first_to_announce(cooldown):
            logger.info("ThingSpace asked to wait %.1f s before the next login of %r; waiting", wait, self.username)
            coordinator.announce_wait(ThrottleWait(self.username, wait, left))
        await asyncio.sleep(pause)
        return cooldown

    def _attach(self, request: httpx2.Request, grant: Grant) -> None:
        request.extensions.update(
            within(dict(request.extensions), "the call itself", CALL_DEADLINE.get(), request.url.path)
        )
        if grant.token is None or grant.session is None:  # cannot happen: _usable or a login made it whole
            raise AuthenticationError(0, "", "no session to send", method=request.method, path=request.url.path)
        request.headers["Authorization"] = f"Bearer {grant.token.reveal()}"
        request.headers["VZ-M2M-Token"] = grant.session.reveal()


class _Wait:
    """Wait for the login in progress."""

    def __init__(self, login: Login) -> None:
        self.login = login


def _throttled(error: ApiError) -> bool:
    """Whether a failed token request or login was throttled: a reason to wait, never a failure."""
    found = protocol.verdict(error.status_code, error.error_code, token_request=protocol.is_token_request(error.path))
    return found is protocol.Verdict.THROTTLED


def _granted(login: Login) -> Grant | None:
    """The grant ``login`` ended with, or ``None`` when it did not end with one."""
    future = login.future
    if not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()


def _release(login: Login) -> None:
    """End a login whose leader is gone, straight on its thread-safe future: its waiters take over."""
    lock, login.file_lock = login.file_lock, None
    if lock is not None:  # held by a leader that will not release it: the caller taking over needs it
        try:
            lock.release(force=True)
        except OSError:
            logger.warning("could not release the login lock of a login whose leader is gone")
    if not login.future.done():
        with contextlib.suppress(concurrent.futures.InvalidStateError):  # ended meanwhile by its leader
            login.future.set_exception(LoginAbandoned("the call leading the login stopped before an answer"))


def _retrieved(future: asyncio.Future[Grant]) -> None:
    if not future.cancelled():
        future.exception()


async def _step(awaitable: Any) -> Any:
    """A step of the flow as a coroutine, for tskit's I/O loop."""
    return await awaitable


async def _close(steps: AsyncGenerator[httpx2.Request, httpx2.Response], *, cancelled: bool) -> None:
    """Close the flow's steps, telling them why: a login's request that failed raises its tskit error here."""
    try:
        await steps.athrow(Closed(cancelled=cancelled))
    except (Closed, StopAsyncIteration):
        pass
    except ThingSpaceError:
        raise
    finally:
        await steps.aclose()
