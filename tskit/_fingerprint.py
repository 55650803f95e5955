"""Keyed fingerprints of secrets: audit snapshots and the refused-login record keep these, never secrets.

The key comes from the ``fingerprint_key`` argument, else ``TSKIT_FINGERPRINT_KEY``, else a random
key kept in ``fingerprint.key`` in tskit's config folder (``TSKIT_CONFIG_DIR``, else the user's
config folder as platformdirs names it on each OS, e.g. ``~/.config/tskit`` on Linux), made on
first use, readable by its owner only.
Without the key, a fingerprint cannot be used to guess a password offline.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from tskit._errors import ConfigurationError

KEY_ENV = "TSKIT_FINGERPRINT_KEY"
CONFIG_DIR_ENV = "TSKIT_CONFIG_DIR"


def config_dir() -> Path:
    """Tskit's configuration folder: ``TSKIT_CONFIG_DIR``, else the OS's user config folder."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    import platformdirs

    return Path(platformdirs.user_config_dir("tskit", appauthor=False, roaming=True))


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
