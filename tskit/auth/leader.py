"""Leading one login: the login lock, the records on disk, the token request and the login.

The steps are an async generator that yields the two requests (the auth flow hands them to
httpx2 and sends the read answers back) and awaits everything else: the lockout guard's blocking
file I/O always runs in a worker thread, with what is left of the call's deadline, never on the
event loop. A request that fails below HTTP is thrown back in as :class:`Closed`, with the
failure that closed the flow: only a login that ThingSpace answered can count as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
from filelock import FileLock
from filelock import Timeout as LockTimeout

from tskit._config import LOGIN_PATH, TOKEN_PATH, Credentials
from tskit._errors import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    Reason,
    Remedy,
    RequestTimeout,
    ThingSpaceError,
    TransportError,
    error_from_response,
    scrub,
)
from tskit._fingerprint import CONFIG_DIR_ENV
from tskit._secret import Secret
from tskit._transport import as_tskit_error
from tskit.auth import coordinator, guard, messages, protocol
from tskit.auth.coordinator import Grant, IdentitySession, Login, LoginAbandoned
from tskit.auth.messages import copy, mark
from tskit.auth.protocol import LOGIN_EXTENSION, Verdict
from tskit.auth.wire import Reader, Sending, TooLarge, off_loop, within

logger = logging.getLogger("tskit.auth")
T = TypeVar("T")
#: What reading a broken answer raises (cut short, bad chunking, bad gzip): httpx2's errors below HTTP.
BROKEN_ANSWER = (httpx2.HTTPError, httpx2.StreamError)


class Closed(Exception):
    """The flow was closed while a request was out: it failed below HTTP, or the call was cancelled."""

    def __init__(self, *, cancelled: bool) -> None:
        super().__init__("the flow was closed")
        self.cancelled = cancelled


@dataclass
class Leader:
    """Leads the logins of one identity, for its :class:`~tskit.ThingSpaceAuth`."""

    session: IdentitySession
    credentials: Credentials
    base_url: str
    remember: bool
    clock: Callable[[], float]
    margin: float
    idle_timeout: float
    timeout: float
    secret_values: Callable[[], tuple[str, ...]]

    @property
    def username(self) -> str:
        """The UWS user this leader logs in as."""
        return self.credentials.username

    def left(self, deadline: float) -> float:
        """Seconds left until ``deadline`` (``time.monotonic``), at least 0."""
        return max(0.0, deadline - time.monotonic())

    # -- failures: handed to every waiter, remembered as a refusal or a cooldown ------------

    def failed(self, login: Login, error: ThingSpaceError, retry_after: float | None = None) -> ThingSpaceError:
        """Hand a failed login to every waiter, and remember it as a refusal or a cooldown."""
        now = self.clock()
        found = token_request = None
        if isinstance(error, ApiError):
            token_request = protocol.is_token_request(error.path)
            found = protocol.verdict(error.status_code, error.error_code, token_request=token_request)
            if login.counted is not None and not token_request and error.status_code >= 400:
                # The login was counted before it was sent: its answer says whether it stays counted.
                passing = found in (Verdict.PASSING, Verdict.THROTTLED)
                login.settle = ("not judged",) if passing else ("failed", error.status_code, error.error_code)
        if isinstance(error, ApiError) and found is not None and protocol.is_refusal(found):
            self.session.refuse(login.credentials, error)
            if self.remember:  # written off the event loop, before the login lock is released
                login.record = (error.status_code, error.error_code)
        elif not isinstance(error, LoginAbandoned):
            throttled = found is Verdict.THROTTLED
            if throttled:
                with self.session.lock:
                    self.session.throttles += 1
                    wait = protocol.throttle_wait(retry_after, self.session.throttles)
            else:
                wait = min(retry_after if retry_after is not None else protocol.COOLDOWN, protocol.MAX_COOLDOWN)
            self.session.cool_down(error, now + wait, throttled=throttled)
            if (throttled or retry_after is not None) and self.remember:  # other processes wait too
                login.throttled_until = time.time() + wait
        self.session.finish(login, error, now)
        return error

    def abandon(self, login: Login) -> None:
        """The call leading ``login`` stopped before an outcome: its waiters lead it next."""
        if not login.future.done():
            self.failed(login, LoginAbandoned("the call leading the login stopped before an answer"))

    def not_answered(
        self, login: Login, request: httpx2.Request, cause: BaseException, reached: bool | None = None
    ) -> ThingSpaceError:
        """A token request or login failed below HTTP: hand that to its waiters; the caller's error.

        One that never left (no connection) is taken back from the user's count of failed logins.
        ``reached`` is given with a ``cause`` that is already tskit's error.
        """
        if isinstance(cause, TransportError) and reached is not None:
            error: TransportError = cause
        else:
            error, reached = as_tskit_error(
                cause, method=request.method, path=request.url.path, timeout=f"{self.timeout:g} s"
            )
        if isinstance(error, RequestTimeout):
            mark(error, Reason.TIMEOUT, Remedy("longer-timeout"))
        elif not reached:
            mark(error, Reason.NOT_REACHED)
        if not reached and login.counted is not None:
            login.counted, login.settle = None, ("not judged",)
        note = messages.not_answered(counted=login.counted, worked_before=login.worked_before)
        if not login.future.done():
            self.failed(login, copy(error, note))
        return copy(error, note)

    def answered(self, login: Login, response: httpx2.Response, what: str) -> ThingSpaceError:
        """A token request or login that ThingSpace answered with a failure: its error, handed to every waiter."""
        token_request = protocol.is_token_request(response.request.url.path)
        error = error_from_response(
            response.status_code,
            response.content,
            method=response.request.method,
            path=response.request.url.path,
            reason=response.reason_phrase,
            secrets=(*login.credentials.secret_values(), *self.secret_values()),
            cls=AuthenticationError,
            retry_after=response.headers.get("Retry-After"),
        )
        found = protocol.verdict(error.status_code, error.error_code, token_request=token_request)
        note = messages.answered(
            found,
            what,
            status=error.status_code,
            code=error.error_code,
            token_request=token_request,
            recorded=self.remember,
            failures=login.counted,
        )
        fresh = copy(error, note)
        if found is Verdict.LOCKED:
            mark(fresh, Reason.USER_LOCKED, Remedy("unlock-user"))
        elif found is Verdict.REFUSED:
            mark(fresh, Reason.LOGIN_REFUSED, Remedy("fix-app-credentials" if token_request else "fix-credentials"))
        elif found is Verdict.UNCERTAIN:
            mark(fresh, Reason.LOGIN_UNCERTAIN, Remedy("fix-credentials"))
        elif found is Verdict.THROTTLED:
            # what tskit waits (Retry-After capped), not what was asked
            wait = protocol.throttle_wait(error.retry_after, self.session.throttles + 1)
            mark(fresh, Reason.THROTTLED, Remedy("wait", seconds=wait))
        elif found is Verdict.PASSING:  # a 401 or 5xx that is no verdict on the credentials
            mark(fresh, Reason.LOGIN_FAILED, Remedy("run-again"))
        logger.info("%s failed with status %s", what, response.status_code)  # the error says it all
        old = self.session.grant
        if old is not None and response.status_code == 401 and not token_request:
            self.session.drop(old, token=True, session=True)  # the bearer was refused: a new one next time
        return self.failed(login, fresh, retry_after=error.retry_after)

    def unusable(self, login: Login, response: httpx2.Response, problem: str) -> ThingSpaceError:
        """A 2xx answer that is not a token or session: its error, handed to every waiter."""
        error = AuthenticationError(
            response.status_code, "", problem, method=response.request.method, path=response.request.url.path
        )
        return self.failed(login, mark(error, Reason.UNEXPECTED_ANSWER))

    def finish_with(self, login: Login, error: ThingSpaceError) -> ThingSpaceError:
        """End ``login`` with an error that sent nothing (no cooldown): every waiter gets it."""
        self.session.finish(login, error, self.clock())
        return error

    # -- the records on disk (always in a worker thread) --------------------------------------

    def check_disk(self, login: Login, deadline: float) -> bool:
        """Under the login lock (blocking): refuse at once what an earlier run learnt should not be sent.

        That is: exactly these credentials were refused, or a throttle's wait is not over (the
        flow then waits it out, or fails at once if the call's deadline is too short for it).

        Returns:
            Whether a refusal of this user with other secrets is on record (to forget on success).
        """
        if not self.remember:
            return False
        url, creds = self.base_url, login.credentials
        try:
            if coordinator.take_lifted(self.session):  # reset() lifted this process's own refusal
                guard.forget_refusal(url, creds, timeout=self.left(deadline))
            earlier = guard.refused_before(url, creds)
            stale = earlier is None and guard.recorded(url, creds)
            throttled = guard.throttled_until(url, creds)
        except (OSError, ValueError, LockTimeout) as problem:
            logger.warning("could not read the record of refused logins: %s", problem)
            return False
        if earlier is None and throttled is not None:  # waited out by the flow, or too long for the call
            wait = throttled - time.time()
            error = AuthenticationError(429, "", "", method="POST", path=LOGIN_PATH, retry_after=wait)
            error.args = (messages.throttled_elsewhere(self.username, wait),)
            mark(error, Reason.THROTTLED, Remedy("wait", seconds=wait))
            self.session.cool_down(error, self.clock() + wait, throttled=True, shared=True)
            raise self.finish_with(login, error)
        if earlier is not None:
            code = str(earlier.get("error_code") or "")
            token = code in protocol.TOKEN_REFUSALS
            locked = "locked" in code.lower()
            status = int(earlier.get("status_code") or 0)
            error = AuthenticationError(status, code, "", method="POST", path=TOKEN_PATH if token else LOGIN_PATH)
            error.args = (
                messages.refused_elsewhere(earlier, status=status, code=code, token_request=token, locked=locked),
            )
            reason = Reason.USER_LOCKED if locked and not token else Reason.LOGIN_REFUSED
            mark(error, reason, messages.refusal_remedy(token_request=token, locked=locked))
            self.session.refuse(login.credentials, error)
            raise self.finish_with(login, error)
        return stale

    def count(self, login: Login, deadline: float) -> None:
        """Count the login about to be sent toward the user's failed logins in a row (blocking).

        Raises:
            AuthenticationError: The user's failed logins in a row reached the limit: not sent.
            ConfigurationError: The count cannot be kept: not sent, rather than risk a lockout.
        """
        try:
            login.counted, login.worked_before = guard.reserve(
                self.base_url, login.credentials, timeout=self.left(deadline)
            )
        except guard.TooManyFailedLogins as full:
            error = AuthenticationError(
                int(full.entry.get("status_code") or 0),
                str(full.entry.get("error_code") or ""),
                "",
                method="POST",
                path=LOGIN_PATH,
            )
            error.args = (messages.too_many(full.entry, self.username),)
            # Not remembered in this process: each new call checks the record again, so a
            # `tskit reset-login` run elsewhere is seen without reconnecting.
            mark(error, Reason.TOO_MANY_FAILED_LOGINS, Remedy("clear-failed-logins"))
            raise self.finish_with(login, error) from None
        except (OSError, ValueError, LockTimeout) as problem:
            config = ConfigurationError(CONFIG_DIR_ENV, *messages.uncountable(self.username, scrub(str(problem))))
            raise self.finish_with(login, config) from None
        login.settle = ("no answer",)  # until an answer says otherwise: a login lost on the way may count

    def record_then_release(self, login: Login, lock: FileLock) -> Callable[[], None]:
        """What writes the outcome of ``login`` to the records, then releases the login lock (blocking)."""
        record, until, settle = login.record, login.throttled_until, login.settle
        forget, session = login.forget_refusal, self.session
        base_url, credentials = self.base_url, login.credentials

        def write() -> None:
            try:
                if settle is not None:
                    guard.settle_login(base_url, credentials, *settle)
                if forget:
                    guard.forget_refusal(base_url, credentials)
                if record is not None:
                    guard.remember(base_url, credentials, *record)
                    coordinator.recorded_here(session)
                if until is not None:
                    guard.throttle(base_url, credentials, until)
            except (OSError, ValueError, LockTimeout) as problem:  # the refusal still reaches the caller
                logger.error("could not update the record of refused and failed logins: %s", problem)
            finally:
                lock.release()

        return write

    async def take_lock(self, login: Login, deadline: float) -> FileLock | None:
        """The cross-process login lock, held, or ``None`` when records are off."""
        if not self.remember:
            return None
        try:
            lock = await off_loop(functools.partial(guard.login_lock, self.base_url, login.credentials))
        except (OSError, ConfigurationError) as problem:
            raise self.finish_with(login, ConfigurationError(CONFIG_DIR_ENV, *messages.unlocked(problem))) from None
        job = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(lock.acquire, timeout=self.left(deadline))
        )
        try:
            await asyncio.shield(job)
        except LockTimeout:
            waited = RequestTimeout(
                messages.waited(self.timeout, "another process's login (its lock file)", self.username),
                method="POST",
                path=LOGIN_PATH,
            )
            raise self.finish_with(login, mark(waited, Reason.TIMEOUT, Remedy("longer-timeout"))) from None
        except OSError as problem:
            raise self.finish_with(login, ConfigurationError(CONFIG_DIR_ENV, *messages.unlocked(problem))) from None
        except BaseException:  # cancelled while waiting: release it once had
            job.add_done_callback(lambda done: None if done.cancelled() or done.exception() else lock.release())
            self.abandon(login)
            raise
        login.file_lock = lock
        return lock

    # -- the steps ------------------------------------------------------------------------

    async def lead(
        self, login: Login, request: httpx2.Request, deadline: float, read: Reader, *, blocking: bool
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """Yield the token request and the login, whichever are needed; ``login``'s future gets the grant.

        Raises:
            ThingSpaceError: The login failed (every waiter got the same).
            Closed: The flow was closed for a reason that is no failure of the login (cancelled).
            TakenOver: Another call took the login over while this one's loop was stopped.
        """
        lock = await self.take_lock(login, deadline)
        session, creds = self.session, login.credentials
        try:
            stale = await off_loop(functools.partial(self.check_disk, login, deadline))
            token, expires_at, renew_at, kept = self._held()
            ext: dict[str, Any] = {LOGIN_EXTENSION: True}
            if token is None:
                _still_leading(login)
                session.token_requests += 1
                what = "the OAuth token request"
                outgoing = protocol.token_request(self.base_url, creds, within(dict(ext), what, deadline))
                with self.sending(login, outgoing, blocking=blocking):
                    response = yield outgoing
                await self.receive(login, outgoing, response, read)
                token, expires_at, renew_at = self._token(login, response)
            if kept is not None:
                session.finish(login, Grant(token, expires_at, kept, renew_at), self.clock())
                return
            with session.lock:
                # Kept before the login is sent: a failed login leaves a valid token for the next one,
                # and the token is then among the secrets scrubbed from the login's error.
                session.grant = Grant(token, expires_at, None, renew_at)
            _still_leading(login)
            if self.remember:  # counted before it is sent: lost on the way, or a crash, it still counts
                await off_loop(functools.partial(self.count, login, deadline))
            session.logins += 1
            outgoing = protocol.login_request(
                self.base_url, creds, token, within(dict(ext), "the session login", deadline)
            )
            with self.sending(login, outgoing, blocking=blocking):
                response = yield outgoing
            await self.receive(login, outgoing, response, read)
            if login.counted is not None and response.is_success:
                login.settle = ("worked",)
            grant = Grant(token, expires_at, self._session_token(login, response), renew_at)
            logger.info("logged in to ThingSpace as %r", creds.username)
            session.finish(login, grant, self.clock())
            if stale and login.settle == ("worked",):  # these credentials logged in: an old refusal is moot
                login.forget_refusal = True
        except Closed:  # cancelled, or closed for a reason that is no failure of a request
            self.abandon(login)
            raise
        except AuthenticationError as error:
            if not login.future.done():
                self.failed(login, error)
            raise
        except BaseException:  # anything else (the deadline ran out before a request) releases the waiters
            self.abandon(login)
            raise
        finally:
            if lock is not None and login.file_lock is lock:
                login.file_lock = None
                if login.record is None and login.throttled_until is None and login.settle is None:
                    lock.release()
                else:  # off the event loop; a cancelled call leaves the thread to finish and release the lock
                    await off_loop(self.record_then_release(login, lock))

    def _held(self) -> tuple[Secret | None, float, float, Secret | None]:
        """The token still usable (``None`` when a new one is needed), its end and renewal, and a session to keep."""
        session, now = self.session, self.clock()
        with session.lock:
            old = session.grant
            idle = now - session.last_used
        token, expires_at, renew_at = (old.token, old.token_expires_at, old.token_renew_at) if old else (None, 0.0, 0.0)
        if token is not None and now >= renew_at:
            token = None
        # A renewed token keeps a session that is still valid: each hour would otherwise cost a login.
        kept = old.session if old is not None and idle < self.idle_timeout - self.margin else None
        return token, expires_at, renew_at, kept

    @contextlib.contextmanager
    def sending(self, login: Login, outgoing: httpx2.Request, *, blocking: bool) -> Iterator[None]:
        """Around the ``yield`` of a token request or login: a failure below HTTP is raised as its error."""
        sending = Sending(outgoing, blocking=blocking)
        try:
            yield
        except Closed as closed:
            raise self.closed(login, outgoing, sending, closed) from None

    def closed(self, login: Login, outgoing: httpx2.Request, sending: Sending, closed: Closed) -> ThingSpaceError:
        """The error of a request that failed below HTTP; ``closed`` again when it was not that (cancelled)."""
        failure = sending.failure
        if failure is not None:
            if not isinstance(failure, httpx2.HTTPError | httpx2.StreamError | httpx2.InvalidURL):
                raise closed
            return self.not_answered(login, outgoing, failure)
        if closed.cancelled:
            raise closed
        # Driven by another client, or over the network: what httpx2's pool traced says how it failed.
        return self.not_answered(login, outgoing, sending.error(f"{self.timeout:g} s"), sending.reached())

    async def receive(self, login: Login, outgoing: httpx2.Request, response: httpx2.Response, read: Reader) -> None:
        """Read the answer to a token request or login, no larger than the cap."""
        try:
            await read(response, True)
        except BROKEN_ANSWER as broken:  # the answer broke off mid-body: a failed login, not abandoned
            raise self.not_answered(login, outgoing, broken) from None
        except TooLarge:
            error = AuthenticationError(
                response.status_code, "", messages.too_large(), method=outgoing.method, path=outgoing.url.path
            )
            raise self.failed(login, mark(error, Reason.UNEXPECTED_ANSWER)) from None

    def _token(self, login: Login, response: httpx2.Response) -> tuple[Secret, float, float]:
        """The token of an answer to the token request, its end and renewal; or its failure, raised."""
        data = self._answer_object(login, response, "OAuth token request", "OAuth token")
        found = protocol.token_of(data)
        if found is None:
            raise self.unusable(login, response, "OAuth token answer has no access_token")
        token, lifetime = found
        expires_at = self.clock() + lifetime
        with self.session.lock:
            previous = self.session.grant.token if self.session.grant is not None else None
        return token, expires_at, protocol.renewal(expires_at, lifetime, self.margin, same=previous == token)

    def _session_token(self, login: Login, response: httpx2.Response) -> Secret:
        """The session token of an answer to the login; or its failure, raised."""
        what = f"session login of user {login.credentials.username!r}"
        raw_session = protocol.session_of(self._answer_object(login, response, what, "session login"))
        if raw_session is None:
            raise self.unusable(login, response, "session login answer has no sessionToken")
        return raw_session

    def _answer_object(self, login: Login, response: httpx2.Response, request: str, answer: str) -> dict[str, Any]:
        """The JSON object of a successful answer to the token request or login; or its failure, raised."""
        if not response.is_success:
            raise self.answered(login, response, request)
        data = protocol.json_object(response.content)
        if data is None:
            problem = f"the {answer} answer is not a JSON object: {scrub(response.text, self.secret_values())!r}"
            raise self.unusable(login, response, problem)
        return data


class TakenOver(Exception):
    """The login this call led was taken over by another call while this one's loop was stopped."""


def _still_leading(login: Login) -> None:
    """Stop a leader whose login was taken over (its loop was stopped, then ran again)."""
    if login.future.done():
        raise TakenOver
