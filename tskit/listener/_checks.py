"""What a callback body must be before it is stored, and what is removed from it first.

The listener faces the internet: every body is parsed and checked here, so that a hostile one
(nested thousands deep, numbers no column can hold, text that is not Unicode) is refused with a
400 naming the problem, and never reaches the store, where it could fail the messages stored
with it. ThingSpace never sends such bodies, so refusing them loses nothing real.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

#: Deepest nesting accepted; ThingSpace's messages are four levels deep.
MAX_DEPTH: Final = 32
#: ``callbackCount`` and ``maxCallbackThreshold`` must fit an SQLite integer column.
_MAX_COUNT: Final = 2**31 - 1
#: A field's name is compared after :func:`normalise`: a name holding one of these is a secret's.
SECRET_PARTS: Final = (
    "pass",  # password, passwd, passphrase, passcode, userPass
    "pwd",
    "secret",
    "token",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
    "sharedkey",
    "hmac",
    "signingkey",
    "authorization",
    "bearer",
    "cookie",
    "signature",
)
#: ...and a name that is one of these, or ends with one (``auth``, ``x-auth``, ``userPin``).
SECRET_ENDINGS: Final = ("auth", "sig", "pin", "otp")
#: Characters written in place of letters (``p@ssword``, ``pa$$word``).
_LOOKALIKES: Final = str.maketrans({"@": "a", "$": "s", "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"})
#: Separators and anything else that is not a letter, dropped from a name before comparing.
_NOT_LETTERS: Final = re.compile(r"[^a-z]+")
#: Names of ThingSpace's own fields that hold a secret's part but are not secrets.
_NOT_SECRETS: Final = frozenset({"bypass"})


def normalise(name: str) -> str:
    """A field name as compared with the secrets' names.

    NFKC (fullwidth letters), casefolded (``ß`` is ``ss``), lookalike digits and signs read as
    letters, then only its letters: ``pass_word``, ``api-key``, ``api.key``, ``"pass word"`` all
    read as one word.
    """
    return _NOT_LETTERS.sub("", unicodedata.normalize("NFKC", name).casefold().translate(_LOOKALIKES))


def is_secret_name(name: str) -> bool:
    """Whether a field named ``name`` holds a secret, and is dropped before anything is stored."""
    word = normalise(name)
    if word in _NOT_SECRETS:
        return False
    return any(part in word for part in SECRET_PARTS) or word.endswith(SECRET_ENDINGS)


class BadMessage(ValueError):
    """A body the listener refuses with 400; the message names the field and what is allowed."""


def _constant(name: str) -> float:
    raise BadMessage(f"the body holds {name}, which is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadMessage(f"the number {text[:20]} is too large")
    return value


def parse(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; :func:`check` it once the sender is known.

    Raises:
        BadMessage: Not UTF-8 JSON, not an object, or nested too deep to read.
    """
    try:
        body = json.loads(raw, parse_constant=_constant, parse_float=_finite)
    except BadMessage:
        raise
    except RecursionError:
        raise BadMessage(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise BadMessage("the body is not UTF-8 text") from None
    except json.JSONDecodeError as error:  # said in plain words: the sender did not write Python
        raise BadMessage(f"the body is not valid JSON (line {error.lineno}, column {error.colno})") from None
    except ValueError:
        raise BadMessage("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadMessage("the body is not a JSON object")
    return body


def check(body: dict[str, Any]) -> dict[str, Any]:
    """The body, if it can be stored as it is.

    Raises:
        BadMessage: Nested deeper than :data:`MAX_DEPTH`, holding text with lone surrogates, or a
            count that is not a whole number that fits a column.
    """
    _walk(body)
    for name in ("callbackCount", "maxCallbackThreshold"):
        count = body.get(name)
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_COUNT
        ):
            raise BadMessage(f"{name} must be a whole number from 0 to {_MAX_COUNT}")
    return body


def _walk(body: dict[str, Any]) -> None:
    """Check depth and text of every value, without recursion (the depth is what is checked)."""
    stack: list[tuple[Any, int, str]] = [(body, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise BadMessage(f"the body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            _text(value, where)
        elif isinstance(value, dict):
            for key, item in value.items():
                _text(key, where or "a field name")
                stack.append((item, depth + 1, f"{where}.{key}" if where else key))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, f"{where}[{i}]") for i, item in enumerate(value))


def _text(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadMessage(f"{where or 'the body'} is not valid Unicode text (it holds a lone surrogate)") from None


def scrub(value: Any) -> Any:
    """A copy without any field named like a password or secret, at any depth."""
    if isinstance(value, Mapping):
        return {k: scrub(v) for k, v in value.items() if not (isinstance(k, str) and is_secret_name(k))}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value
