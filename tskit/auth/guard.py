"""The cross-process lockout guard: records on disk of refused, counted and throttled logins, and the login lock.

Blocking file I/O under file locks: the auth flow calls every function here off the event loop,
with what is left of the call's deadline (``timeout``). ThingSpace locks a user after five failed
logins in a row, and a cron job runs again every few minutes, so what one run learnt is kept in
tskit's config folder for the next (secrets only as keyed fingerprints):

* ``refused-logins.json``: a refusal, keyed by server, application key and user. A later run with
  the same credentials sends nothing; changed ones are tried (and clear it when they work).
* ``failed-logins.json``: Verizon documents neither the status nor the code of a wrong password,
  so each login is counted per user before it is sent (:func:`reserve`), then settled by its
  answer (:func:`settle_login`): cleared when it works, taken back when it never left or its
  answer judged nothing, kept otherwise. After three in a row no run sends another login for
  that user. A count that cannot be kept means no login is sent.
* ``throttled-logins.json``: a throttle, so that other runs wait it out (never more than 60 s).

``tskit reset-login`` forgets all three. Records are keyed by :func:`server`, so every spelling of
one server's URL shares them. A damaged record (a folder in its place, too large, not a JSON
object) is set aside and said so, never read as "nothing on record" for the failed logins.
Logins of one user are serialised across processes by :func:`login_lock`; the records are
changed under a lock of their own and replaced atomically.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from filelock import FileLock
from filelock import Timeout as LockTimeout

from tskit._addresses import is_loopback_host
from tskit._config import Credentials
from tskit._errors import ConfigurationError
from tskit._fingerprint import config_dir, fingerprint, load_key, wanted_dir
from tskit._runtime import on_fork_in_child
from tskit.auth.protocol import MAX_COOLDOWN

# Serialises this process's changes to the records (the file lock serialises processes).
_lock = threading.Lock()


@on_fork_in_child
def _unlock_after_fork() -> None:
    # A thread of the parent may have held it while recording a login: the child would wait forever.
    global _lock
    _lock = threading.Lock()


logger = logging.getLogger("tskit")
FILE_NAME = "refused-logins.json"
#: Longest wait, in seconds, for another process to finish changing the record.
RECORD_LOCK_WAIT = 5.0


def _path() -> Path:
    return config_dir() / FILE_NAME


@contextlib.contextmanager
def _held(timeout: float = RECORD_LOCK_WAIT) -> Iterator[None]:
    """Hold the record's locks (this process's, then the file lock) for at most ``timeout`` seconds of waiting.

    Raises:
        filelock.Timeout: Not had in time (another process changes the record for that long).
    """
    until = time.monotonic() + max(0.0, min(timeout, RECORD_LOCK_WAIT))
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    if not _lock.acquire(timeout=max(0.0, until - time.monotonic())):
        raise LockTimeout(str(lock_path))
    try:
        with FileLock(lock_path, timeout=max(0.0, until - time.monotonic()), thread_local=False):
            yield
    finally:
        _lock.release()


def login_lock(base_url: str, credentials: Credentials) -> FileLock:
    """The file lock that one process at a time holds while it logs in as this user.

    One per server and user, whatever the application key: ThingSpace counts a user's failed
    logins whichever key they came with, and a login that works must not clear the count while
    another key's login is still on its way.
    """
    folder = config_dir() / "logins"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / f"{_user_key(base_url, credentials)}.lock", thread_local=False)


def _key(base_url: str, credentials: Credentials) -> str:
    text = f"{server(base_url)}\0{credentials.client_id}\0{credentials.username}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def server(base_url: str) -> str:
    """The server a base URL names, however it is spelt: one record and one count per server.

    Scheme and host in lower case, without a trailing dot or a default port, and every loopback
    host (``localhost``, ``127.0.0.1``, ``::1``) as one.
    """
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    try:
        host, port = (parts.hostname or "").rstrip("."), parts.port
    except ValueError:  # not a URL tskit would use; keyed as written
        return base_url
    with contextlib.suppress(OSError, UnicodeError):  # an IPv4 address in any form the resolver takes ("127.1")
        host = socket.inet_ntoa(socket.inet_aton(host))
    if is_loopback_host(host):
        host = "loopback"
    if port == {"https": 443, "http": 80}.get(scheme):
        port = None
    return f"{scheme}://{host}{f':{port}' if port else ''}{parts.path.rstrip('/')}"


def _secrets(base_url: str, credentials: Credentials) -> str:
    both = f"{credentials.client_secret.reveal()}\0{credentials.password.reveal()}"
    return fingerprint(load_key(), server(base_url), credentials.client_id + "\0" + credentials.username, both)


#: Largest record read, in bytes: tskit's records hold a few entries per user; a larger one is damaged.
MAX_RECORD_SIZE = 1_000_000


def _load(path: Path) -> dict[str, Any] | None:
    """A record as written: ``{}`` when there is none yet, ``None`` when it is damaged.

    Damaged: not a regular file (a folder where the record should be), larger than
    :data:`MAX_RECORD_SIZE`, not JSON (or nested too deeply to read), or not a JSON object.
    """
    try:
        # O_NONBLOCK: a FIFO where the record should be opens at once instead of waiting for a
        # writer (which would hang every command, past its deadline and Ctrl-C).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink loop: not a record to go by (set aside like a folder)
            return None
        raise  # unreadable (permissions): never taken for "nothing recorded"
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder opens too; a FIFO or device never blocks now
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_RECORD_SIZE + 1)
    if len(raw) > MAX_RECORD_SIZE:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # json.loads recurses once per nesting level
        return None
    return data if isinstance(data, dict) else None


def _read(path: Path | None = None) -> dict[str, Any]:
    path = path or _path()
    data = _load(path)
    if data is not None:
        return data
    # Never read a damaged record as "nothing refused": say so loudly, and keep it for a look.
    aside = path.with_name(f"{path.name}.corrupt-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        path.replace(aside)
    except OSError:
        aside = path
    logger.warning(  # loud, yet the run goes on: a warning, not an error the exit code would contradict
        "the record %s is damaged (not a file holding a JSON object); moved it to %s. Logins it held "
        "may be tried once more: check the credentials before running many processes",
        path,
        aside,
    )
    return {}


def _write(data: dict[str, Any], path: Path | None = None) -> None:
    path = path or _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1)
    partial.replace(path)


def _left_behind(name: str) -> dict[str, Any]:
    """The record ``name`` in the config folder tskit can no longer write, if any: it still counts.

    tskit falls back to a temporary folder when its config folder cannot be written; refusals
    and failed logins recorded there before must not be forgotten. ``{}`` when there is none.

    Raises:
        DamagedRecord: It cannot be read.
    """
    wanted = wanted_dir()
    if wanted is None or wanted == config_dir():
        return {}
    try:
        data = _load(wanted / name)
    except OSError:  # not even readable: nothing to go by
        return {}
    if data is None:
        raise DamagedRecord(f"{wanted / name} is damaged (not a JSON object)")
    return data


def refused_before(base_url: str, credentials: Credentials) -> dict[str, Any] | None:
    """The record of an earlier refusal of exactly these credentials, if any."""
    key = _key(base_url, credentials)
    for data in (_read(), _left_behind(FILE_NAME)):  # replaced whole by writers: no lock to read it
        entry = data.get(key)
        if isinstance(entry, dict) and entry.get("secrets") == _secrets(base_url, credentials):
            return entry
    return None


def recorded(base_url: str, credentials: Credentials) -> bool:
    """Whether a refusal of this user (with whatever secrets) is on record."""
    return _key(base_url, credentials) in _read()


def remember(
    base_url: str, credentials: Credentials, status_code: int, error_code: str, *, timeout: float = RECORD_LOCK_WAIT
) -> None:
    """Record that ThingSpace refused these credentials."""
    with _held(timeout):
        data = _read()
        data[_key(base_url, credentials)] = {
            "base_url": base_url,
            "client_id": credentials.client_id,
            "username": credentials.username,
            "secrets": _secrets(base_url, credentials),
            "status_code": status_code,
            "error_code": error_code,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write(data)


def forget(base_url: str, credentials: Credentials, *, timeout: float = RECORD_LOCK_WAIT) -> bool:
    """Drop the refusal, the failed logins and the throttle on record for this user (any secrets).

    Returns:
        Whether there were any.
    """
    refused = forget_refusal(base_url, credentials, timeout=timeout)
    throttled = forget_throttle(base_url, credentials, timeout=timeout)
    return clear_failures(base_url, credentials, timeout=timeout) or refused or throttled


def forget_refusal(base_url: str, credentials: Credentials, *, timeout: float = RECORD_LOCK_WAIT) -> bool:
    """Drop the refusal on record for this user (any secrets); whether there was one."""
    with _held(timeout):
        data = _read()
        refused = data.pop(_key(base_url, credentials), None) is not None
        if refused:
            _write(data)
    return refused


#: Failed logins in a row that may count toward ThingSpace's lockout, per user: each login is
#: counted before it is sent (so one lost on the way, or a crash, still counts), then the count is
#: cleared when it works, or taken back when its answer shows nothing was judged.
FAILURES_FILE = "failed-logins.json"
#: Most logins of a user in a row that fail or get no usable answer; then none is sent until
#: ``tskit reset-login``. ThingSpace locks a user at five: two are left for a person.
MAX_FAILED_LOGINS = 3


class TooManyFailedLogins(Exception):
    """The user's failed logins in a row reached :data:`MAX_FAILED_LOGINS`: no login may be sent."""

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(f"{entry.get('count')} failed logins in a row")
        self.entry = entry


class DamagedRecord(ValueError):
    """The record of failed logins cannot be read: it cannot say how many there were."""


def _user_key(base_url: str, credentials: Credentials) -> str:
    # ThingSpace counts a user's failed logins whatever application key they came with.
    return hashlib.sha256(f"{server(base_url)}\0{credentials.username}".encode()).hexdigest()[:24]


def _failures_path() -> Path:
    return config_dir() / FAILURES_FILE


def _read_failures(path: Path) -> dict[str, Any]:
    """The record of failed logins; a damaged one is an error, never "no failures"."""
    data = _load(path)
    if data is None:
        raise DamagedRecord(f"{path} is damaged (not a JSON object)")
    return data


def _count(entry: object) -> int:
    """The failed logins in a row an entry holds; a damaged one counts as the limit, never as none."""
    count = entry.get("count", 0) if isinstance(entry, dict) else 0
    valid = isinstance(count, int) and not isinstance(count, bool) and count >= 0
    return count if valid else MAX_FAILED_LOGINS


def failures(base_url: str, credentials: Credentials) -> dict[str, Any] | None:
    """The failed logins of this user in a row on record: ``count``, ``status_code``, ``error_code``, ``at``."""
    entry = _read_failures(_failures_path()).get(_user_key(base_url, credentials))
    return entry if isinstance(entry, dict) and _count(entry) > 0 else None


def reserve(base_url: str, credentials: Credentials, *, timeout: float = RECORD_LOCK_WAIT) -> tuple[int, bool]:
    """Count a login about to be sent: the failed logins in a row it makes, and whether it has secrets that worked.

    The second is whether the user's last login that worked used exactly these secrets.

    Raises:
        TooManyFailedLogins: The count reached :data:`MAX_FAILED_LOGINS`: send nothing.
        DamagedRecord: The record cannot be read: send nothing.
        OSError: The record cannot be written (or its lock had), so the login cannot be counted.
        filelock.Timeout: The record's lock was not had within ``timeout``.
    """
    path = _failures_path()
    with _held(timeout):
        data = _read_failures(path)
        key = _user_key(base_url, credentials)
        found = data.get(key)
        mine: dict[str, Any] = found if isinstance(found, dict) else {}
        behind = _left_behind(FAILURES_FILE).get(key)
        entry = behind if _count(behind) > _count(mine) else mine
        count = _count(entry)
        if count >= MAX_FAILED_LOGINS:
            raise TooManyFailedLogins(dict(entry) if isinstance(entry, dict) else {})
        worked = mine.get("worked")
        data[key] = {
            "base_url": server(base_url),
            "username": credentials.username,
            "count": count + 1,
            "status_code": None,
            "error_code": "",
            "outcome": "sent; no answer yet",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        } | ({"worked": worked} if worked else {})
        _write(data, path)
        return count + 1, worked is not None and worked == _fingerprint_or_none(base_url, credentials)


def _fingerprint_or_none(base_url: str, credentials: Credentials) -> str | None:
    try:
        return _secrets(base_url, credentials)
    except (OSError, ValueError, ConfigurationError):  # no usable key: nothing is known to have worked
        return None


def settle_login(
    base_url: str,
    credentials: Credentials,
    outcome: str,
    status_code: int = 0,
    error_code: str = "",
    *,
    timeout: float = RECORD_LOCK_WAIT,
) -> None:
    """Settle a login counted by :func:`reserve`.

    Args:
        base_url: The ThingSpace host root.
        credentials: Whose login.
        outcome: ``"worked"`` clears the count (and remembers a fingerprint of the secrets that
            worked); ``"not judged"`` takes this login back (its answer shows it never reached
            the login); ``"no answer"`` keeps it, unless these very secrets worked last time;
            ``"failed"`` keeps it, with the answer.
        status_code: The answer's status, for ``"failed"``.
        error_code: The answer's error code, for ``"failed"``.
        timeout: Longest wait, in seconds, for the record's lock.
    """
    path = _failures_path()
    with _held(timeout):
        data = _read_failures(path)
        key = _user_key(base_url, credentials)
        entry = data.get(key)
        if not isinstance(entry, dict):
            if outcome != "failed" or not status_code:
                return
            # Cleared meanwhile by another process's login that worked, before ThingSpace
            # answered this one: this failure came after that success, so it starts a new count.
            entry = {"base_url": server(base_url), "username": credentials.username, "count": 1}
            entry["at"] = datetime.now(UTC).isoformat(timespec="seconds")
        fingerprint = _fingerprint_or_none(base_url, credentials)
        if outcome == "no answer" and fingerprint is not None and entry.get("worked") == fingerprint:
            # These very secrets logged in before: a login of theirs whose answer was lost most
            # likely worked too, so an outage does not stop cron runs for good.
            outcome = "not judged"
        if outcome == "worked":
            data[key] = {"base_url": entry.get("base_url"), "username": entry.get("username"), "count": 0}
            data[key] |= {"worked": fingerprint, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        elif outcome == "not judged":
            data[key] = entry | {"count": max(0, _count(entry) - 1), "outcome": "the last login was not judged"}
        elif status_code:  # at least 1: a login that worked meanwhile cleared the count before this answer
            data[key] = entry | {"count": max(1, _count(entry)), "status_code": status_code, "error_code": error_code}
            data[key]["outcome"] = "failed"
        else:  # no answer to go by: the last real answer stays on record
            data[key] = entry | {"outcome": "sent; no usable answer"}
        _write(data, path)


def clear_failures(base_url: str, credentials: Credentials, *, timeout: float = RECORD_LOCK_WAIT) -> bool:
    """Forget the failed logins of this user (``tskit reset-login``); whether there were any.

    A damaged record is set aside (renamed) and a new one started.
    """
    path = _failures_path()
    with _held(timeout):
        try:
            data = _read_failures(path)
        except DamagedRecord:
            aside = path.with_name(f"{path.name}.damaged-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}")
            path.replace(aside)
            logger.error(
                "set the damaged record of failed logins aside, as %s: the failed logins it held are "
                "forgotten, so check the password before the next run",
                aside,
            )
            return True
        if data.pop(_user_key(base_url, credentials), None) is None:
            return False
        _write(data, path)
        return True


#: Logins ThingSpace throttled with a ``Retry-After``: passing, never a refusal, but shared with
#: other processes so that they wait it out instead of each sending a login into it.
THROTTLE_FILE = "throttled-logins.json"
#: Seconds a recorded throttle may end beyond the longest wait (clocks of two processes, rounding).
CLOCK_SLACK = 1.0


def _until(value: object, now: float) -> float | None:
    """The end (``time.time()``) of a throttle as recorded, if it is still on and believable.

    tskit never records a wait longer than :data:`~tskit.auth.protocol.MAX_COOLDOWN`: one that ends
    later than that from now was not written under this clock (a wall clock stepped back, a
    damaged or hand-made file) and is ignored, so no record makes anyone wait longer than that.
    """
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    if value <= now or value > now + MAX_COOLDOWN + CLOCK_SLACK:
        return None
    return float(value)


def throttle(base_url: str, credentials: Credentials, until: float, *, timeout: float = RECORD_LOCK_WAIT) -> None:
    """Record that logins of this user are throttled until ``until`` (``time.time()``)."""
    path = config_dir() / THROTTLE_FILE
    with _held(timeout):
        now = time.time()
        data = {k: v for k, v in _read(path).items() if _until(v, now) is not None}
        data[_key(base_url, credentials)] = min(until, now + MAX_COOLDOWN)
        _write(data, path)


def throttled_until(base_url: str, credentials: Credentials) -> float | None:
    """Until when (``time.time()``) ThingSpace asked, in any process, to wait before logging in as this user.

    Capped when read: never more than :data:`~tskit.auth.protocol.MAX_COOLDOWN` from now, whatever
    the record says (see :func:`_until`).
    """
    value, now = _read(config_dir() / THROTTLE_FILE).get(_key(base_url, credentials)), time.time()
    until = _until(value, now)
    if until is None and isinstance(value, int | float) and value > now + MAX_COOLDOWN + CLOCK_SLACK:
        logger.warning("ignored a recorded throttle that ends more than %g s from now", MAX_COOLDOWN)
    return until


def forget_throttle(base_url: str, credentials: Credentials, *, timeout: float = RECORD_LOCK_WAIT) -> bool:
    """Drop the throttle on record for this user (``tskit reset-login``); whether there was one."""
    path = config_dir() / THROTTLE_FILE
    with _held(timeout):
        data = _read(path)
        if data.pop(_key(base_url, credentials), None) is None:
            return False
        _write(data, path)
        return True
