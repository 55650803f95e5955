"""Checks on what a user passes in, run before any request is sent.

Each check returns the value to send (normalised) or raises :class:`~tskit.ValidationError`
naming the field and what it accepts. Pure functions: no I/O, no state.
"""

from __future__ import annotations

import difflib
import re
from typing import Final
from urllib.parse import quote, urlsplit

from tskit._errors import ValidationError
from tskit._models import ALLOWED_LISTENER_PORTS, ALLOWED_LISTENER_PORTS_TEXT, SERVICE_CATALOGUE
from tskit._secret import Secret

#: Longest username or password ThingSpace accepts for a listener.
MAX_CREDENTIAL_LENGTH: Final = 40
MAX_URL_LENGTH: Final = 2048

# ThingSpace account names look like 0000123456-00001; its sandbox uses TestAccount-1. Both fit.
_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ACCOUNT_ALLOWED = "1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit, e.g. 0000123456-00001"
_SERVICE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,99}")
_SERVICE_ALLOWED = "a letter, then up to 99 letters, digits, '-', '_' or '.'"
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")


def account_name(value: object) -> str:
    """Check an account name; surrounding white space is dropped."""
    if not isinstance(value, str):
        raise ValidationError("account_name", f"must be a string, not {type(value).__name__}", _ACCOUNT_ALLOWED)
    text = value.strip()
    if not text:
        raise ValidationError("account_name", "is empty", _ACCOUNT_ALLOWED)
    if not _ACCOUNT.fullmatch(text):
        raise ValidationError("account_name", f"{text!r} is not an account name", _ACCOUNT_ALLOWED)
    return text


def suggest_service(value: str) -> str | None:
    """The catalogue's service name closest to ``value``, if any is close."""
    by_lower = {name.lower(): name for name in SERVICE_CATALOGUE}
    if value.lower() in by_lower:
        return by_lower[value.lower()]
    # typos score 0.9 and more; an unrelated name (NewFancyService vs PwnService) about 0.65
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.8)
    return by_lower[close[0]] if close else None


def service_name(value: object, *, allow_unknown: bool = False) -> str:
    """Check a callback service name against the catalogue.

    Args:
        value: The service name, e.g. ``"CarrierService"``.
        allow_unknown: Accept a well-formed name the catalogue does not know (a service newer
            than this release of tskit).
    """
    if not isinstance(value, str):
        raise ValidationError("service_name", f"must be a string, not {type(value).__name__}")
    text = value.strip()
    if text in SERVICE_CATALOGUE:
        return text
    if not _SERVICE.fullmatch(text):
        raise ValidationError("service_name", f"{text!r} is not a service name", _SERVICE_ALLOWED)
    if allow_unknown:
        return text
    hint = suggest_service(text)
    problem = f"unknown service {text!r}"
    if hint:
        problem += f"; did you mean {hint!r}?"
    raise ValidationError(
        "service_name",
        problem,
        "one of tskit.SERVICE_CATALOGUE, or pass allow_unknown_service=True for a service newer than tskit",
    )


def listener_url(value: object, *, allow_any_port: bool = False) -> str:
    """Check a listener URL: http or https, a host, no credentials in it, an allowed port.

    Args:
        value: The URL ThingSpace will POST messages to.
        allow_any_port: Skip the check against ThingSpace's allowed listener ports (for a
            simulator or a proxy that accepts other ports).
    """
    if not isinstance(value, str):
        raise ValidationError("url", f"must be a string, not {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValidationError("url", "is empty", "an http:// or https:// URL")
    if len(text) > MAX_URL_LENGTH:
        raise ValidationError("url", f"is {len(text)} characters long", f"at most {MAX_URL_LENGTH}")
    if _UNSAFE_URL_CHARS.search(text):
        raise ValidationError("url", "contains spaces or control characters", "percent-encode them")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValidationError("url", f"cannot be parsed ({exc})", "an http:// or https:// URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError("url", f"scheme {parts.scheme or '(none)'!r} is not allowed", "http or https")
    if "@" in parts.netloc:
        raise ValidationError(
            "url",
            "must not carry a user name or password before '@'",
            "pass them as username= and password=; ThingSpace sends those inside each message",
        )
    if not parts.hostname:
        raise ValidationError("url", "has no host", "e.g. https://listener.example.com/callbacks")
    if parts.fragment:
        raise ValidationError("url", "has a '#fragment', which is never sent to a server", "drop it")
    effective = port if port is not None else (443 if parts.scheme.lower() == "https" else 80)
    if not allow_any_port and effective not in ALLOWED_LISTENER_PORTS:
        raise ValidationError(
            "url",
            f"port {effective} is not one ThingSpace delivers to",
            f"{ALLOWED_LISTENER_PORTS_TEXT}; pass allow_any_port=True to skip this check",
        )
    return text


def credential(field: str, value: object) -> str:
    """Check a listener username or password: a string of at most 40 characters."""
    if value is None:
        return ""
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if len(value) > MAX_CREDENTIAL_LENGTH:
        # Never echo the value: it may be a password.
        raise ValidationError(field, f"is {len(value)} characters long", f"at most {MAX_CREDENTIAL_LENGTH}")
    if _UNSAFE_URL_CHARS.search(value.replace(" ", "")):
        raise ValidationError(field, "contains control characters", "printable characters only")
    return value


def path_segment(value: str) -> str:
    """Percent-encode one path parameter so that no value can reach a different path."""
    if value in ("", ".", ".."):
        raise ValidationError("path", f"{value!r} cannot be a path parameter")
    return quote(value, safe="")
