"""Files a person, a crash or an attacker may have shaped: refused clearly, bounded, before a parser sees them.

``tomllib`` and ``json`` recurse once per level of nesting and keep every dotted key's full path
per part, so a small file can raise ``RecursionError`` or take gigabytes. Everything here is read
only from a regular file (a FIFO or a device is refused without blocking), up to a size, and
checked for nesting depth, dotted-key length and key count by a scan that does not recurse.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Final

from tskit._errors import FileReason, ValidationError

#: Deepest nesting of tables, arrays and inline tables (a desired state needs 4).
MAX_DEPTH: Final = 16
#: Most dots in one key (``a.b.c``: 2); a desired state needs 2.
MAX_DOTS: Final = 16
#: Most keys and tables in a desired-state file: 10,000 accounts of 3 listeners take ~120,000.
MAX_KEYS: Final = 200_000

_TOML_TOKEN = re.compile(r'"""|\'\'\'|["\'#\n\[\]{}.=,]')
_ML_BASIC_END = re.compile(r'(?:[^"\\]|\\.|"(?!""))*"""', re.S)
_ML_LITERAL_END = re.compile(r"(?:[^']|'(?!''))*'''")
_BASIC_END = re.compile(r'(?:[^"\\\n]|\\.)*"')
_LITERAL_END = re.compile(r"[^'\n]*'")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


class FileError(ValidationError):
    """A file refused before it was parsed: not a regular file, too large, nested too deep, ...

    Attributes:
        path: The file as named.
        reason: What is wrong, as a stable :class:`~tskit.FileReason`: ``missing``, ``unreadable``, ``not-a-file``,
            ``too-large``, ``too-deep``, ``too-many-keys``, ``line-too-long``, ``not-utf8``.
        line: The line (from 1) where it was found, or ``None`` for the whole file.
    """

    def __init__(self, path: str, reason: str, problem: str, allowed: str = "", *, line: int | None = None) -> None:
        self.path = path
        self.line = line
        super().__init__(f"{path} line {line}" if line else path, problem, allowed, reason=FileReason(reason))


def read_regular(path: str | os.PathLike[str], max_size: int) -> bytes:
    """The bytes of a regular file of at most ``max_size`` bytes; a FIFO or device never blocks.

    Raises:
        FileError: The file is missing, unreadable, not a regular file, or larger than ``max_size``.
    """
    name = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_error(name, exc) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device"
            raise FileError(name, "not-a-file", f"is {kind}, not a regular file", "")
        if info.st_size > max_size:
            raise too_large(name, max_size)
        chunks, size = [], 0
        while size <= max_size:
            chunk = os.read(fd, min(2**20, max_size + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _os_error(name, exc) from None
    finally:
        os.close(fd)
    if size > max_size:  # grown since fstat
        raise too_large(name, max_size)
    return b"".join(chunks)


def too_large(name: str, max_size: int) -> FileError:
    """The error of a file larger than ``max_size`` bytes."""
    return FileError(name, "too-large", f"is larger than {_size(max_size)}", f"a file of at most {_size(max_size)}")


def _size(count: int) -> str:
    return f"{count // 2**20} MB" if count >= 2**20 else f"{count // 2**10} KB"


def _os_error(name: str, exc: OSError) -> FileError:
    if exc.errno == errno.ENOENT:
        return FileError(name, "missing", "does not exist")
    if exc.errno == errno.EISDIR:
        return FileError(name, "not-a-file", "is a folder, not a regular file", "a regular file")
    return FileError(name, "unreadable", f"cannot be read: {exc.strerror or exc}")


def check_toml_shape(text: str, name: str) -> None:
    """Refuse TOML too deep, with too long dotted keys or too many keys, before ``tomllib`` sees it.

    ``tomllib`` recurses per level and copies each dotted key's path per part. The limits are
    :data:`MAX_DEPTH`, :data:`MAX_DOTS` and :data:`MAX_KEYS`. The scan skips strings and
    comments, does not recurse, and leaves what it does not understand to ``tomllib``.

    Raises:
        FileError: ``too-deep`` or ``too-many-keys``, with the line.
    """
    depth = dots = keys = 0
    line, pos = 1, 0
    while (found := _TOML_TOKEN.search(text, pos)) is not None:
        token, pos = found.group(), found.end()
        if token == "\n":
            line, dots = line + 1, 0
        elif token == "#":
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
        elif token in ('"""', "'''", '"', "'"):
            pattern = {'"""': _ML_BASIC_END, "'''": _ML_LITERAL_END, '"': _BASIC_END, "'": _LITERAL_END}[token]
            closed = pattern.match(text, pos)
            if closed is None:
                return  # an unterminated string: tomllib names it
            line += text.count("\n", pos, closed.end())
            pos = closed.end()
        elif token in "[{":
            if depth == 0:
                keys += 1  # a table header, or a value that makes one
            depth += 1
            if depth > MAX_DEPTH:
                raise FileError(
                    name, "too-deep", f"nests tables or arrays more than {MAX_DEPTH} deep", line=line
                ) from None
        elif token in "]}":
            depth = max(0, depth - 1)
        elif token == ".":
            dots += 1
            if dots > MAX_DOTS:
                raise FileError(name, "too-deep", f"has a key of more than {MAX_DOTS + 1} dotted parts", line=line)
        else:  # "=" or ",": what follows is a value, or the next key
            dots = 0
            keys += token == "="
        if keys > MAX_KEYS:
            raise FileError(name, "too-many-keys", f"has more than {MAX_KEYS:,} keys and tables", line=line)


def json_too_deep(text: str) -> bool:
    """Whether a JSON text nests objects and arrays more than :data:`MAX_DEPTH` deep (no recursion)."""
    bare = _JSON_STRING.sub("", text) if '"' in text else text
    if bare.count("[") + bare.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for char in bare:
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False
