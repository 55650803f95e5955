"""One login at a time per identity, in the whole process; the tokens, cooldowns and refusals it keeps.

An identity is (base URL, application key, UWS user, a keyed fingerprint of the secrets), plus
the in-process server when there is one (the embedded simulator). Its OAuth token and M2M session
are kept here, once for the whole process: every connection, thread and event loop that uses the
identity shares them. Logins of one user across processes are serialised by the lockout guard
(``tskit.auth.guard``).

* One login at a time: the first caller that needs one leads it; every other caller waits for
  its outcome on a ``concurrent.futures.Future``, from whatever thread or event loop it runs on.
  The outcome, a new :class:`Grant` or the error, is handed to every waiter.
* Credentials are immutable :class:`Grant` snapshots. A call that fails with an expired token or
  session drops them only if they are still the current snapshot.
* A refusal (wrong credentials) is remembered for the identity while the process lives, never
  evicted, and never tried again with the same credentials. Any other failed login is handed to
  its waiters once, then new calls fail at once during a short cooldown.
* A throttle is a reason to wait, never a refusal: every call whose deadline leaves room waits it
  out (with jitter), then one of them logs in for all.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import hmac
import random
import secrets
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, NamedTuple

from filelock import FileLock

from tskit._config import Credentials
from tskit._errors import ApiError, Reason, ThingSpaceError
from tskit._runtime import on_fork_in_child
from tskit._secret import Secret
from tskit.auth.guard import server

#: Longest jitter added to a throttle's wait: up to a quarter of the wait, at most this.
MAX_JITTER: Final = 1.0


def jitter(wait: float) -> float:
    """A random extra wait, so that callers waiting out one throttle do not all log in at the same instant."""
    return random.uniform(0.0, min(MAX_JITTER, wait / 4))  # spreading, not secrecy


_Key = tuple[str, str, str, str, object]


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

    def __init__(self, name: str, key: _Key | None = None) -> None:
        self.lock = threading.Lock()
        self.name = name
        self.key = key
        self.grant: Grant | None = None
        self.last_used = 0.0
        self.login: Login | None = None
        self.cooldown: Cooldown | None = None
        #: Throttles in a row (a login that works starts again), and the last whose wait was announced.
        self.throttles = 0
        self.announced: Cooldown | None = None
        self.logins = 0
        self.token_requests = 0

    @property
    def refused(self) -> tuple[Credentials, ApiError] | None:
        """The refusal of this identity's credentials, kept while the process lives (never evicted)."""
        return _refused.get(self.key) if self.key is not None else self._refused_here

    @refused.setter
    def refused(self, value: tuple[Credentials, ApiError] | None) -> None:
        if self.key is None:
            self._refused_here = value
        elif value is None:
            _refused.pop(self.key, None)
        else:
            _refused[self.key] = value

    _refused_here: tuple[Credentials, ApiError] | None = None

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


#: Identities whose sessions (tokens) a process keeps; the least recently used beyond it are
#: forgotten. Their refusals are not: see ``_refused``.
MAX_IDENTITIES: Final = 64
# Key of the fingerprints that tell callers with other secrets apart; random per process, never stored.
_SECRETS_KEY: Final = secrets.token_bytes(32)
# Kept for the process, not weakly: a script's successive asyncio.run() with new connections must
# find the same token, session, refusal and cooldown.
_sessions: collections.OrderedDict[_Key, IdentitySession] = collections.OrderedDict()
# Refused identities, never evicted while the process lives: an evicted refusal would let the
# same wrong password be sent again, a step toward a locked user.
_refused: dict[_Key, tuple[Credentials, ApiError]] = {}
# Refusals this process wrote to the record on disk, and those of them that reset() lifted: the
# next login of the identity forgets the record first (off the event loop).
_recorded_here: set[_Key] = set()
_lifted: set[_Key] = set()
_registry_lock = threading.Lock()


def recorded_here(session: IdentitySession) -> None:
    """Note that this process wrote the refusal of ``session``'s identity to the record on disk."""
    if session.key is not None:
        _recorded_here.add(session.key)


def lift(session: IdentitySession) -> None:
    """Lift this process's own refusal of the identity: the next login forgets it on disk too."""
    if session.key is not None and session.key in _recorded_here:
        _lifted.add(session.key)


def take_lifted(session: IdentitySession) -> bool:
    """Whether this process's own refusal on disk was lifted and is still to forget (then it is taken)."""
    if session.key is None or session.key not in _lifted:
        return False
    _lifted.discard(session.key)
    _recorded_here.discard(session.key)
    return True


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
    url = server(base_url)  # one identity however the server is spelt: a refusal is never sent again under another
    with _registry_lock:
        _drop_freed_realms()
        realm_key = _realm_key(realm)
        key: _Key = (url, credentials.client_id, credentials.username, _secrets_fingerprint(credentials), realm_key)
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = IdentitySession(f"{credentials.username}@{url}", key)
            while len(_sessions) > MAX_IDENTITIES:
                _sessions.popitem(last=False)
        else:
            _sessions.move_to_end(key)
        return session


# Realms (in-process simulators) are keyed by identity, not held: a closed connection's simulator
# is freed, and then every session and refusal of it goes (it was another ThingSpace). The
# finalizer only queues the key (it may run inside a garbage collection on any thread, even one
# holding _registry_lock); the next registry call drops the entries, always before that id can
# be handed to a new realm, since the same call makes the new key.
_freed_realms: collections.deque[tuple[str, int]] = collections.deque()
_watched_realms: set[int] = set()


def _realm_key(realm: object) -> object:
    if realm is None:
        return None
    key = ("realm", id(realm))
    if id(realm) in _watched_realms:
        return key
    try:
        weakref.finalize(realm, _freed_realms.append, key)
    except TypeError:  # cannot be watched: held, as any other part of the key
        return realm
    _watched_realms.add(id(realm))
    return key


def _drop_freed_realms() -> None:
    """Drop what freed realms' identities held; called under ``_registry_lock``."""
    while _freed_realms:
        key = _freed_realms.popleft()
        _watched_realms.discard(key[1])
        for table in (_sessions, _refused):
            for stale in [k for k in table if k[4] == key]:
                del table[stale]
        for marks in (_recorded_here, _lifted):
            marks.difference_update({k for k in marks if k[4] == key})


@on_fork_in_child
def _after_fork_in_child() -> None:
    # A login led by a thread of the parent never ends in the child, and a lock held by one of
    # them at the fork would never be released: the child keeps the grants, not these.
    global _registry_lock
    _registry_lock = threading.Lock()
    for session in list(_sessions.values()):
        session.lock = threading.Lock()
        session.login = None


def forget_all() -> None:
    """Forget every identity's session and refusal (for tests that must start from nothing)."""
    with _registry_lock:
        _sessions.clear()
        _refused.clear()
        _recorded_here.clear()
        _lifted.clear()
