"""A record, on disk, of logins ThingSpace refused, so that no later run tries the same ones again.

ThingSpace locks a user after five failed logins in a row. One process never retries a refused
login, but a cron job runs again every few minutes: each run would try once, and the fifth would
lock the user. So a refusal is written to ``refused-logins.json`` in tskit's config folder,
keyed by base URL, application key and user, with a keyed fingerprint of the secrets (never the
secrets). A later run with the same credentials refuses to log in without sending anything;
changed credentials are tried (and clear the record when they work). ``tskit reset-login``
forgets the record, e.g. after support unlocked the user.

Verizon documents neither the status nor the code of a wrong password, so failed logins whose
answer tskit cannot read as a refusal may still count toward the lockout. They are counted per
user in ``failed-logins.json`` (refusals too), and after three in a row no run sends another
login for that user until a ``tskit reset-login``; a login that works clears the count.

Processes share it safely: logins of one identity are serialised by :func:`login_lock` (a file
lock in the same folder), and the record is changed under a lock of its own and replaced
atomically, so N processes started together with a wrong password send one login between them
and the others read its refusal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from tskit._config import Credentials
from tskit._fingerprint import config_dir, fingerprint, load_key

_lock = threading.Lock()
logger = logging.getLogger("tskit")
FILE_NAME = "refused-logins.json"
#: Longest wait, in seconds, for another process to finish changing the record.
RECORD_LOCK_WAIT = 5.0


def _path() -> Path:
    return config_dir() / FILE_NAME


def _record_lock() -> FileLock:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.with_name(path.name + ".lock"), timeout=RECORD_LOCK_WAIT, thread_local=False)


def login_lock(base_url: str, credentials: Credentials) -> FileLock:
    """The file lock that one process at a time holds while it logs in as this identity."""
    folder = config_dir() / "logins"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / f"{_key(base_url, credentials)}.lock", thread_local=False)


def _key(base_url: str, credentials: Credentials) -> str:
    text = f"{base_url}\0{credentials.client_id}\0{credentials.username}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _secrets(base_url: str, credentials: Credentials) -> str:
    both = f"{credentials.client_secret.reveal()}\0{credentials.password.reveal()}"
    return fingerprint(load_key(), base_url, credentials.client_id + "\0" + credentials.username, both)


def _read(path: Path | None = None) -> dict[str, Any]:
    path = path or _path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    # Never read a damaged record as "nothing refused": say so loudly, and keep it for a look.
    aside = path.with_name(f"{path.name}.corrupt-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    try:
        path.replace(aside)
    except OSError:
        aside = path
    logger.warning(
        "the record of refused logins %s is damaged (not a JSON object); moved it to %s. Logins it held "
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


def refused_before(base_url: str, credentials: Credentials) -> dict[str, Any] | None:
    """The record of an earlier refusal of exactly these credentials, if any."""
    entry = _read().get(_key(base_url, credentials))  # replaced whole by writers: no lock to read it
    if isinstance(entry, dict) and entry.get("secrets") == _secrets(base_url, credentials):
        return entry
    return None


def recorded(base_url: str, credentials: Credentials) -> bool:
    """Whether a refusal of this user (with whatever secrets) is on record."""
    return _key(base_url, credentials) in _read()


def remember(base_url: str, credentials: Credentials, status_code: int, error_code: str) -> None:
    """Record that ThingSpace refused these credentials."""
    with _lock, _record_lock():
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


def forget(base_url: str, credentials: Credentials) -> bool:
    """Drop the refusal and the failed logins on record for this user (any secrets); whether there were any."""
    with _lock, _record_lock():
        data = _read()
        refused = data.pop(_key(base_url, credentials), None) is not None
        if refused:
            _write(data)
    return clear_failures(base_url, credentials) or refused


#: Failed logins in a row that may count toward ThingSpace's lockout, per user: answers tskit
#: could not read as a refusal or as passing (see ``tskit._session.login_failure``), and refusals.
FAILURES_FILE = "failed-logins.json"


def _user_key(base_url: str, credentials: Credentials) -> str:
    # ThingSpace counts a user's failed logins whatever application key they came with.
    return hashlib.sha256(f"{base_url}\0{credentials.username}".encode()).hexdigest()[:24]


def failures(base_url: str, credentials: Credentials) -> dict[str, Any] | None:
    """The failed logins of this user in a row on record: ``count``, ``status_code``, ``error_code``, ``at``."""
    entry = _read(config_dir() / FAILURES_FILE).get(_user_key(base_url, credentials))
    if isinstance(entry, dict) and isinstance(entry.get("count"), int) and entry["count"] > 0:
        return entry
    return None


def count_failure(base_url: str, credentials: Credentials, status_code: int, error_code: str) -> int:
    """Count one more failed login of this user; returns how many are now on record in a row."""
    path = config_dir() / FAILURES_FILE
    with _lock, _record_lock():
        data = _read(path)
        key = _user_key(base_url, credentials)
        entry = data.get(key)
        count = (entry["count"] if isinstance(entry, dict) and isinstance(entry.get("count"), int) else 0) + 1
        data[key] = {
            "base_url": base_url,
            "username": credentials.username,
            "count": count,
            "status_code": status_code,
            "error_code": error_code,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write(data, path)
        return count


def clear_failures(base_url: str, credentials: Credentials) -> bool:
    """Forget the failed logins of this user (a login worked, or ``tskit reset-login``); whether there were any."""
    path = config_dir() / FAILURES_FILE
    with _lock, _record_lock():
        data = _read(path)
        if data.pop(_user_key(base_url, credentials), None) is None:
            return False
        _write(data, path)
        return True


#: Logins ThingSpace throttled with a ``Retry-After``: passing, never a refusal, but shared with
#: other processes so that they honour the wait instead of each sending a login into it.
THROTTLE_FILE = "throttled-logins.json"


def throttle(base_url: str, credentials: Credentials, until: float) -> None:
    """Record that logins of this user are throttled until ``until`` (``time.time()``)."""
    path = config_dir() / THROTTLE_FILE
    with _lock, _record_lock():
        data = {k: v for k, v in _read(path).items() if isinstance(v, int | float) and v > time.time()}
        data[_key(base_url, credentials)] = until
        _write(data, path)


def throttled_until(base_url: str, credentials: Credentials) -> float | None:
    """Until when (``time.time()``) another process was told to wait before logging in as this user."""
    until = _read(config_dir() / THROTTLE_FILE).get(_key(base_url, credentials))
    return float(until) if isinstance(until, int | float) and until > time.time() else None
