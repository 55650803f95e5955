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

KEY_ENV = "TSKIT_FINGERPRINT_KEY"
CONFIG_DIR_ENV = "TSKIT_CONFIG_DIR"


def config_dir() -> Path:
    """Tskit's configuration folder: ``TSKIT_CONFIG_DIR``, else the OS's user config folder."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    import platformdirs

    return Path(platformdirs.user_config_dir("tskit", appauthor=False, roaming=True))


def load_key(key: bytes | str | None = None) -> bytes:
    """The fingerprint key: the one given, the environment's, or the key file's (made if missing)."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
    if key is not None:
        data = key.encode() if isinstance(key, str) else key
        if len(data) < 16:
            raise ValueError("a fingerprint key must be at least 16 bytes long")
        return data
    path = config_dir() / "fingerprint.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(fresh + "\n")
    return bytes.fromhex(fresh)


def key_id(key: bytes) -> str:
    """A short public name of a key, to tell whether two snapshots' fingerprints compare."""
    return hashlib.sha256(b"tskit fingerprint key id\0" + key).hexdigest()[:12]


def fingerprint(key: bytes, account_name: str, service_name: str, password: str) -> str:
    """``""`` when no password is set, else a 16-hex-digit keyed digest bound to account and service."""
    if not password:
        return ""
    message = f"{account_name}\0{service_name}\0{password}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:16]
