"""Keyed fingerprints of secrets: audit snapshots and the refused-login record keep these, never secrets.

The key comes from the ``fingerprint_key`` argument, else ``TSKIT_FINGERPRINT_KEY``, else a random
key kept in ``fingerprint.key`` in tskit's config folder (``TSKIT_CONFIG_DIR``, else the user's
config folder as platformdirs names it on each OS, e.g. ``~/.config/tskit`` on Linux), made on
first use, readable by its owner only.
Without the key, a fingerprint cannot be used to guess a password offline.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import os
import secrets
import stat
import tempfile
from pathlib import Path

import platformdirs

from tskit._errors import ConfigurationError

logger = logging.getLogger("tskit")

KEY_ENV = "TSKIT_FINGERPRINT_KEY"
CONFIG_DIR_ENV = "TSKIT_CONFIG_DIR"


def config_dir() -> Path:
    """Tskit's configuration folder: ``TSKIT_CONFIG_DIR``, else the OS's user config folder.

    When that folder cannot be made or written (read-only, under a file, no home folder), a
    folder of the user's own under the system's temporary folder (mode 0700) is used instead,
    with a warning: the login lock and the record of refused logins must live somewhere, or
    processes started together could lock the user.

    Raises:
        ConfigurationError: Neither folder can be written.
    """
    wanted = wanted_dir()
    if wanted is not None and _writable(wanted):
        return wanted
    fallback = Path(tempfile.gettempdir()) / f"tskit-{_user_id()}"
    if _private(fallback):
        if (wanted, fallback) not in _warned:
            _warned.add((wanted, fallback))
            logger.error(  # shown by the CLI too: the records of refused and failed logins start anew there
                "tskit's config folder %s cannot be written; using %s instead (set %s to choose one)",
                wanted or "(none: no home folder)",
                fallback,
                CONFIG_DIR_ENV,
            )
        return fallback
    raise ConfigurationError(
        CONFIG_DIR_ENV,
        f"neither {wanted or 'the config folder'} nor {fallback} can be written (tskit keeps its login lock there)",
        "a folder this user can write",
    )


_warned: set[tuple[Path | None, Path]] = set()


def wanted_dir() -> Path | None:
    """The config folder tskit is asked to use (``TSKIT_CONFIG_DIR``, or the platform's), if it can be named."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    try:
        path = Path(platformdirs.user_config_dir("tskit", appauthor=False, roaming=True))
    except (KeyError, RuntimeError, OSError):  # no home folder to find
        return None
    return path if path.is_absolute() else None


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _user_id() -> str:
    getuid = getattr(os, "getuid", None)
    if getuid is not None:
        return str(getuid())
    return getpass.getuser()


def _private(path: Path) -> bool:
    """Whether ``path`` is (made) a folder of this user's own, closed to others."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        status = path.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(status.st_mode):
        return False
    if hasattr(os, "getuid"):
        if status.st_uid != os.getuid():  # another user's folder in /tmp: never trust it
            return False
        if status.st_mode & 0o077:
            try:
                path.chmod(0o700)
            except OSError:
                return False
    return os.access(path, os.W_OK | os.X_OK)


def load_key(key: bytes | str | None = None) -> bytes:
    """The fingerprint key: the one given, the environment's, or the key file's (made if missing).

    Raises:
        ConfigurationError: The key given or in ``TSKIT_FINGERPRINT_KEY`` is shorter than 16
            bytes, or the key file does not hold a key.
    """
    from_env = key is None and bool(os.environ.get(KEY_ENV))
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    if key is not None:
        data = key.encode() if isinstance(key, str) else key
        if len(data) < 16:
            raise ConfigurationError(
                KEY_ENV if from_env else "fingerprint_key", f"is {len(data)} bytes long", "at least 16 bytes"
            )
        return data
    path = config_dir() / "fingerprint.key"
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under another name, then linked into place: a process reading the key never
    # sees a half-written file, and of two processes making it at once, both use the first one's.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process made it first: use its key
    finally:
        os.unlink(temporary)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ConfigurationError(
            str(path),
            "does not hold a fingerprint key (it is empty or not 32+ hex digits)",
            f"delete it to have a new key made, or set {KEY_ENV}",
        )
    return key


def key_id(key: bytes) -> str:
    """A short public name of a key, to tell whether two snapshots' fingerprints compare."""
    return hashlib.sha256(b"tskit fingerprint key id\0" + key).hexdigest()[:12]


def fingerprint(key: bytes, account_name: str, service_name: str, password: str) -> str:
    """``""`` when no password is set, else a 16-hex-digit keyed digest bound to account and service."""
    if not password:
        return ""
    message = f"{account_name}\0{service_name}\0{password}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:16]
