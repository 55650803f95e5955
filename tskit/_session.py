"""One ThingSpace session per identity per process, and one login at a time for it.

An identity is (base URL, application key, UWS user, a keyed fingerprint of the secrets), plus
the in-process server when there is one (the embedded simulator).
Its OAuth token and M2M session are kept here, once for the whole
process: every connection, thread and event loop that uses the identity shares them.

* One login at a time: the first caller that needs one leads it; every other caller waits for
  its outcome on a ``concurrent.futures.Future``, from whatever thread or event loop it runs on
  (``asyncio.wrap_future`` on a loop, ``Future.result`` in a thread). The outcome, a new
  :class:`Grant` or the error, is handed to every waiter; no waiter sends a login of its own.
* Credentials are immutable :class:`Grant` snapshots. A call that fails with an expired token or
  session drops them only if they are still the current snapshot, so a late 401 for an old token
  never erases the newer one.
* A refusal (wrong credentials: see :func:`is_refusal`) is remembered for the identity and never
  tried again with the same credentials. Any other failed login (408, 5xx, a timeout) is handed
  to its waiters once, then new calls fail at once during a short cooldown instead of each trying
  again.
* A throttle (429, or the gateway's ``9008xx`` throttle faults: see :func:`is_throttle`) is a
  reason to wait, never a refusal: every call whose deadline leaves room waits it out (with
  jitter, so that waiting callers do not all log in at the same instant), then one of them logs
  in for all; a call whose deadline is too short fails at once with :class:`LoginThrottled`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import hmac
import os
import random
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, NamedTuple

from filelock import FileLock

from tskit._config import Credentials
from tskit._errors import ApiError, Reason, ThingSpaceError
from tskit._secret import Secret

#: Seconds during which new calls fail at once after a failed (not refused) login.
COOLDOWN: Final = 2.0
#: Longest ``Retry-After`` of a failed login that the cooldown follows, and the longest wait any
#: throttle, recorded by any process, imposes.
MAX_COOLDOWN: Final = 60.0
#: Shortest wait after a throttle, whatever ``Retry-After`` says (``0`` would send logins back to back).
MIN_THROTTLE_WAIT: Final = 1.0
#: Longest jitter added to a throttle's wait: up to a quarter of the wait, at most this.
MAX_JITTER: Final = 1.0

#: OAuth ``error`` values that mean the application key or secret is wrong.
TOKEN_REFUSALS: Final = frozenset({"invalid_client"})
#: Parts of ThingSpace's login error codes that mean a wrong user/password or a locked user.
_LOGIN_REFUSALS: Final = ("login.failed", "userlocked", "user.locked", "locked")
#: Gateway codes that are passing: throttled (900800…900807).
TRANSIENT_FAULTS: Final = frozenset({"900800", "900801", "900802", "900803", "900804", "900805", "900806", "900807"})
#: The API gateway's own fault codes (900800 throttled, 900901 bad bearer, 900906 no such
#: resource…): the gateway answered, and the login behind it never judged a user.
_GATEWAY_FAULT: Final = re.compile(r"9\d{5}")


def login_failure(error: ApiError, *, token_request: bool) -> Literal["refusal", "uncertain", "passing"]:
    """What a failed token request or login means for the credentials and for the user's lockout.

    * ``"refusal"``: the credentials are wrong or the user is locked (OAuth ``invalid_client``; a
      login-failed or user-locked code, whatever the status). Remembered: the same credentials
      are not tried again by any run.
    * ``"uncertain"``: any other 4xx answer to the login, with or without a code. Verizon
      documents neither the status nor the code of a wrong password, so it may have been one, and
      may count toward the five failed logins that lock the user: it stays counted (every login is
      counted before it is sent, see ``tskit._refusals``), and after three in a row no run sends
      another login for the user.
    * ``"passing"``: nothing was judged: 408, 429 and 5xx (a server error is not a verdict on a
      password; after an outage, cron runs must log in again by themselves), and the API
      gateway's own faults (``9xxxxx`` codes such as the throttle ``900800`` or a bad bearer
      ``900901``). A failed token request that is not ``invalid_client``.
    """
    status, code = error.status_code, error.error_code
    if token_request:
        return "refusal" if code in TOKEN_REFUSALS else "passing"
    if is_known_refusal(error):
        return "refusal"
    if status in (408, 429) or status >= 500 or _GATEWAY_FAULT.fullmatch(code):
        return "passing"
    return "uncertain"


def is_throttle(error: ApiError, *, token_request: bool) -> bool:
    """Whether a failed token request or login was throttled (429, or the gateway's ``9008xx``), not judged."""
    throttled = error.status_code == 429 or error.error_code in TRANSIENT_FAULTS
    return throttled and login_failure(error, token_request=token_request) == "passing"


def throttle_wait(retry_after: float | None, throttles: int) -> float:
    """Seconds to wait after the ``throttles``-th throttle in a row: ``Retry-After``, or a doubling cooldown.

    At least :data:`MIN_THROTTLE_WAIT`, at most :data:`MAX_COOLDOWN`.
    """
    asked = retry_after if retry_after is not None else COOLDOWN * 2 ** max(0, min(throttles - 1, 6))
    return min(max(asked, MIN_THROTTLE_WAIT), MAX_COOLDOWN)


def jitter(wait: float) -> float:
    """A random extra wait, so that callers waiting out one throttle do not all log in at the same instant."""
    return random.uniform(0.0, min(MAX_JITTER, wait / 4))  # spreading, not secrecy


class Cooldown(NamedTuple):
    """New calls wait or fail until ``until`` (the identity's clock), after a failed login.

    ``throttled``: ThingSpace throttled it, and calls wait it out; otherwise they fail at once
    with ``error``. ``shared``: the throttle was read from another process's record.
    """

    until: float
    error: ThingSpaceError
    throttled: bool = False
    shared: bool = False


class ThrottleWait(NamedTuple):
    """A wait for a throttle about to begin, for whoever shows it (see :func:`add_wait_listener`)."""

    username: str
    seconds: float
    time_left: float


_wait_listeners: list[Callable[[ThrottleWait], object]] = []


def add_wait_listener(listener: Callable[[ThrottleWait], object]) -> None:
    """Call ``listener`` (from any thread) once per throttle that calls of this process wait out."""
    _wait_listeners.append(listener)


def remove_wait_listener(listener: Callable[[ThrottleWait], object]) -> None:
    """Stop calling ``listener``."""
    with contextlib.suppress(ValueError):
        _wait_listeners.remove(listener)


def announce_wait(wait: ThrottleWait) -> None:
    """Tell every listener that a throttle's wait begins."""
    for listener in list(_wait_listeners):
        listener(wait)


def is_refusal(error: ApiError, *, token_request: bool) -> bool:
    """Whether a failed token request or login is a refusal of its credentials (see :func:`login_failure`)."""
    return login_failure(error, token_request=token_request) == "refusal"


def is_known_refusal(error: ApiError) -> bool:
    """Whether a refused login's code is one of the failed-login or locked-user codes tskit knows."""
    lowered = error.error_code.lower()
    return any(part in lowered for part in _LOGIN_REFUSALS)


@dataclass(frozen=True, slots=True, eq=False)
class Grant:
    """What lets calls through: an OAuth token and an M2M session token. Compared by identity."""

    token: Secret | None
    token_expires_at: float
    session: Secret | None
    #: When to ask for a new token (before it expires, but never again for one handed back unchanged).
    token_renew_at: float = 0.0

    def without(self, *, token: bool, session: bool) -> Grant:
        """A new snapshot lacking the token, the session, or both."""
        return replace(self, token=None if token else self.token, session=None if session else self.session)


class LoginAbandoned(ThingSpaceError):
    """The call leading a login stopped before an outcome (it was cancelled): a waiter leads next."""

    reason: str = Reason.LOGIN_ABANDONED


class Login:
    """One login in progress: who asked for it with which credentials, and its outcome."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.future: concurrent.futures.Future[Grant] = concurrent.futures.Future()
        try:
            self._leader_loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._leader_loop = None
        self._leader_thread = threading.current_thread()
        #: The cross-process login lock its leader holds, if any (released by a caller taking over).
        self.file_lock: FileLock | None = None
        #: The refusal to write to the record on disk (status, error code), once the login failed.
        self.record: tuple[int, str] | None = None
        #: Until when (``time.time()``) ThingSpace asked to wait before another login, to share.
        self.throttled_until: float | None = None
        #: Failed logins of the user in a row on disk, this one included, once it was counted.
        self.counted: int | None = None
        #: How to settle the count on disk: ``("worked",)``, ``("not judged",)`` or
        #: ``("failed", status, error code)``; ``None`` when nothing was counted.
        self.settle: tuple[Any, ...] | None = None
        #: Whether an old refusal of other secrets is to be forgotten: these logged in.
        self.forget_refusal = False
        #: Whether the user's last login that worked used these very secrets.
        self.worked_before = False

    def leader_gone(self) -> bool:
        """Whether the caller leading this login can no longer end it.

        Its event loop stopped (Ctrl-C in ``run_until_complete``) or closed, or its thread ended.
        """
        loop = self._leader_loop
        if loop is not None:
            return loop.is_closed() or not loop.is_running()
        return not self._leader_thread.is_alive()


class IdentitySession:
    """The token, session, refusal and login in progress of one identity, shared process-wide.

    Attributes:
        logins: Session logins sent for this identity so far.
        token_requests: OAuth token requests sent for this identity so far.
    """

    def __init__(self, name: str) -> None:
        self.lock = threading.Lock()
        self.name = name
        self.grant: Grant | None = None
        self.last_used = 0.0
        self.login: Login | None = None
        self.refused: tuple[Credentials, ApiError] | None = None
        self.cooldown: Cooldown | None = None
        #: Throttles in a row (a login that works starts again), and the last whose wait was announced.
        self.throttles = 0
        self.announced: Cooldown | None = None
        self.logins = 0
        self.token_requests = 0

    def finish(self, login: Login, outcome: Grant | BaseException, now: float) -> None:
        """Record the outcome of ``login`` and hand it to every waiter."""
        if login.future.done():  # a leader that was taken over while its loop was stopped: changes nothing
            return
        with self.lock:
            if self.login is login:
                self.login = None
            if isinstance(outcome, Grant):
                self.grant, self.last_used, self.cooldown, self.throttles = outcome, now, None, 0
                if self.refused is not None and self.refused[0] == login.credentials:
                    self.refused = None
        if login.future.done():
            return
        if isinstance(outcome, Grant):
            login.future.set_result(outcome)
        else:
            login.future.set_exception(outcome)

    def refuse(self, credentials: Credentials, error: ApiError) -> None:
        """Remember that ThingSpace refused these credentials."""
        with self.lock:
            self.refused = (credentials, error)

    def cool_down(self, error: ThingSpaceError, until: float, *, throttled: bool = False, shared: bool = False) -> None:
        """Make new calls fail at once with ``error`` until ``until``, or wait until then when ``throttled``."""
        with self.lock:
            self.cooldown = Cooldown(until, error, throttled, shared)

    def first_to_announce(self, cooldown: Cooldown) -> bool:
        """Whether the wait for ``cooldown`` is yet to be announced (then it counts as announced)."""
        with self.lock:
            first, self.announced = self.announced is not cooldown, cooldown
            return first

    def drop(self, grant: Grant, *, token: bool, session: bool) -> None:
        """Drop the token and/or session of ``grant``, only if it is still the current snapshot."""
        with self.lock:
            if self.grant is grant:
                self.grant = grant.without(token=token, session=session)

    def touch(self, grant: Grant, now: float) -> None:
        """Note that ``grant``'s session was just used (ThingSpace's idle timeout slides)."""
        if self.grant is grant and now > self.last_used:
            self.last_used = now  # a plain store: a lost race only keeps a slightly older time

    def reset(self) -> None:
        """Forget the token, session, refusal and cooldown."""
        with self.lock:
            self.grant = None
            self.refused = None
            self.cooldown = None
            self.throttles = 0


_Key = tuple[str, str, str, str, object]
#: Identities whose sessions a process keeps (the least recently used beyond it are forgotten).
MAX_IDENTITIES: Final = 64
# Key of the fingerprints that tell callers with other secrets apart; random per process, never stored.
_SECRETS_KEY: Final = secrets.token_bytes(32)
# Kept for the process, not weakly: a script's successive asyncio.run() with new connections must
# find the same token, session, refusal and cooldown.
_sessions: collections.OrderedDict[_Key, IdentitySession] = collections.OrderedDict()
_registry_lock = threading.Lock()


def _secrets_fingerprint(credentials: Credentials) -> str:
    both = f"{credentials.client_secret.reveal()}\0{credentials.password.reveal()}".encode("utf-8", "surrogatepass")
    return hmac.new(_SECRETS_KEY, both, hashlib.sha256).hexdigest()


def session_for(base_url: str, credentials: Credentials, realm: object = None) -> IdentitySession:
    """The session of this identity in this process, made on first use.

    Callers with other secrets for the same user get a session of their own: a wrong password is
    never served by the session that a right one opened, nor is its refusal handed to right callers.

    Args:
        base_url: The ThingSpace host root.
        credentials: Whose session (the application key, user name and secrets pick it).
        realm: The in-process server, when there is one (two simulators are two ThingSpaces).
    """
    url = base_url.rstrip("/")
    key: _Key = (url, credentials.client_id, credentials.username, _secrets_fingerprint(credentials), realm)
    with _registry_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = IdentitySession(f"{credentials.username}@{url}")
            while len(_sessions) > MAX_IDENTITIES:
                _sessions.popitem(last=False)
        else:
            _sessions.move_to_end(key)
        return session


def _after_fork_in_child() -> None:
    # A login led by a thread of the parent never ends in the child, and a lock held by one of
    # them at the fork would never be released: the child keeps the grants, not these.
    global _registry_lock
    _registry_lock = threading.Lock()
    for session in list(_sessions.values()):
        session.lock = threading.Lock()
        session.login = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forget_all() -> None:
    """Forget every identity's session (for tests that must start from nothing)."""
    with _registry_lock:
        _sessions.clear()
