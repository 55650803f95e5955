"""Desired-state files: TOML read with ``tomllib``, written with ``tomli-w``, passwords as references."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import tomli_w

from tskit.state._files import FileError, check_toml_shape, read_regular

if TYPE_CHECKING:
    from tskit.state._model import DesiredState

#: The table of facts about the file itself (format, fingerprint key), not an account.
META: Final = "tskit"
#: Largest desired-state file read: thousands of accounts take well under a megabyte.
MAX_FILE_SIZE: Final = 16 * 2**20

_HEADER = """\
# Desired callback listeners, one table per account and service, for `tskit plan` and `tskit apply`.
# A password is never written here, only a reference to it:
#   password = { env = "VARIABLE" }           the variable holds the password
#   password = { fingerprint = "..." }        keep the password the listener has now
#   username = "" or password = ""            none (a [defaults] value does not apply)
# A [defaults] table may give the username and password of listeners that name none.
# Accounts not named here are never touched; an account named with no services is emptied
# only by `tskit apply --prune`.

"""


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a desired-state TOML file into a mapping, for :meth:`DesiredState.from_mapping`.

    The file is refused before ``tomllib`` reads it when it is not a regular file (a FIFO does
    not block), larger than :data:`MAX_FILE_SIZE`, nested too deep or holds too many keys.

    Raises:
        FileError: The file cannot be read or parsed (a ``ValidationError`` with ``reason`` and
            ``line``).
    """
    name = os.fspath(path)
    raw = read_regular(path, MAX_FILE_SIZE)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise FileError(name, "not-utf8", "is not UTF-8 text", line=line) from None
    check_toml_shape(text, name)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileError(name, "not-toml", f"is not valid TOML: {exc}", line=getattr(exc, "lineno", None)) from None
    return data


def dumps(state: DesiredState) -> str:
    """The TOML text of a state; every password is written as its reference.

    Raises:
        ValueError: A password was given as text and has no reference to write.
    """
    parts = [_HEADER, tomli_w.dumps({META: state.meta()})]
    for account, services in state.accounts.items():
        if not services:
            parts.append("\n" + tomli_w.dumps({account: {}}))
        for service, wanted in services.items():
            # An empty username or password is written too: "none", which [defaults] does not fill.
            values = {"url": wanted.url, "username": wanted.username}
            table = tomli_w.dumps({account: {service: values}})
            reference = wanted.reference()
            if reference:
                # tomli-w writes a nested table as a sub-table; a reference reads better inline.
                # Its values are checked names and hex digits, so this needs no quoting rules.
                (kind, value), *_ = reference.items() if isinstance(reference, dict) else []
                table += f'password = {{ {kind} = "{value}" }}\n'
            else:
                table += 'password = ""\n'
            parts.append("\n" + table)
    return "".join(parts)


def save(state: DesiredState, path: str | os.PathLike[str]) -> Path:
    """Write a state to a TOML file (readable by its owner and group only); returns the path."""
    text = dumps(state)
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return target
