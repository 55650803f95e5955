"""Checks on what a user passes in, run before any request is sent.

Each check returns the value to send (normalised) or raises :class:`~tskit.ValidationError`
naming the field and what it accepts. Pure functions: no I/O, no state.
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

import idna

from tskit._errors import Reason, Remedy, ValidationError, mask_url, query_credentials
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
_CREDENTIALS_ALLOWED = "ThingSpace sends a listener's username and password inside each message"
# Characters refused in every field, because none has a place in a name, URL or password and many
# make text read differently than it is: every control, format (bidi controls, zero-width characters,
# BOM, soft hyphen, tags), surrogate, private-use and unassigned code point, the line and paragraph
# separators, every space but U+0020, noncharacters, variation selectors, the interlinear annotation
# characters and U+FFFC, the Hangul fillers, the blank Braille pattern and invisible joiners and vowels.
_REFUSED_CATEGORIES: Final = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Cs": "a lone surrogate (text that was not valid UTF-8)",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
_BLANK_LOOKALIKES: Final = frozenset({0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0, 0x2800, 0xFFFC})
_URL_SAFE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))


def _refusal(char: str, position: int) -> str | None:
    """Why ``char`` is refused at ``position`` (0-based), or ``None`` when it is allowed."""
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return None
    category = unicodedata.category(char)
    if category in _REFUSED_CATEGORIES:
        return _REFUSED_CATEGORIES[category]
    if category == "Zs":
        return "a space other than U+0020"
    if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:
        return "a noncharacter"
    if 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or 0x180B <= code <= 0x180F:
        return "a variation selector"
    if 0xFFF9 <= code <= 0xFFFB or code in _BLANK_LOOKALIKES:
        return "an invisible or blank character"
    if position == 0 and category.startswith("M"):
        return "a combining mark with nothing to combine with"
    return None


def plain_text(field: str, value: str, allowed: str = "printable characters only") -> str:
    """Refuse text holding a character that no field accepts (see ``_refusal``).

    The message names the character's code point and position, never the value: it may be a password.
    """
    for index, char in enumerate(value):
        why = _refusal(char, index)
        if why:
            raise ValidationError(field, f"contains U+{ord(char):04X}, {why}, at position {index + 1}", allowed)
    return value


def account_name(value: object) -> str:
    """Check an account name; surrounding white space is dropped."""
    if not isinstance(value, str):
        raise ValidationError("account_name", f"must be a string, not {type(value).__name__}", _ACCOUNT_ALLOWED)
    text = plain_text("account_name", value.strip(" "), _ACCOUNT_ALLOWED)
    if not text:
        raise ValidationError("account_name", "is empty", _ACCOUNT_ALLOWED)
    if not _ACCOUNT.fullmatch(text):
        raise ValidationError("account_name", f"{text!r} is not an account name", _ACCOUNT_ALLOWED, value_shown=text)
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
    text = plain_text("service_name", value.strip(" "), _SERVICE_ALLOWED)
    if text in SERVICE_CATALOGUE:
        return text
    if not _SERVICE.fullmatch(text):
        raise ValidationError("service_name", f"{text!r} is not a service name", _SERVICE_ALLOWED, value_shown=text)
    if allow_unknown:
        return text
    hint = suggest_service(text)
    problem = f"unknown service {text!r}"
    if hint:
        problem += f"; did you mean {hint!r}?"
    raise ValidationError(
        "service_name",
        problem,
        reason=Reason.UNKNOWN_SERVICE,
        value_shown=text,
        remedy=Remedy("choose-from", option="allow_unknown_service", value="services"),
    )


def listener_url(value: object, *, allow_any_port: bool = False) -> str:
    """Check a listener URL: http or https, a host, no credentials in it (nor in its query), an allowed port.

    The URL is sent as it will be compared with a listing: scheme and host in lower case, an
    internationalised host name in its IDNA form (``bücher.example`` becomes
    ``xn--bcher-kva.example``; a label mixing scripts, e.g. Latin and Cyrillic, is refused as a
    lookalike), and other non-ASCII characters of the path and query percent-encoded. Invisible,
    control and blank characters are refused (see :func:`plain_text`), never encoded.

    Args:
        value: The URL ThingSpace will POST messages to.
        allow_any_port: Skip the check against ThingSpace's allowed listener ports (for a
            simulator or a proxy that accepts other ports).
    """
    if not isinstance(value, str):
        raise ValidationError("url", f"must be a string, not {type(value).__name__}")
    text = plain_text("url", value.strip(" "), "an http:// or https:// URL without control or invisible characters")
    if not text:
        raise ValidationError("url", "is empty", "an http:// or https:// URL")
    if len(text) > MAX_URL_LENGTH:
        raise ValidationError("url", f"is {len(text)} characters long", f"at most {MAX_URL_LENGTH}")
    # Look for user info before parsing: a parser's error may quote the part that holds a password.
    authority = text.split("//", 1)[1] if "//" in text else ""
    if "@" in re.split(r"[/?#]", authority, maxsplit=1)[0]:
        raise ValidationError(
            "url",
            "must not carry a user name or password before '@'",
            _CREDENTIALS_ALLOWED,
            reason=Reason.CREDENTIALS_IN_URL,
            value_shown=mask_url(text),
            remedy=Remedy("listener-credentials"),
        )
    if " " in text:
        raise ValidationError("url", "contains spaces", "percent-encode them as %20")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValidationError(
            "url", "cannot be parsed: the host or port is malformed", "an http:// or https:// URL"
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        if not parts.scheme or "://" not in text:  # "listener.example.com:443/cb" parses as scheme "listener..."
            raise ValidationError("url", "has no scheme", "https://... or http://...")
        raise ValidationError(
            "url", f"scheme {parts.scheme!r} is not allowed", "http or https", value_shown=mask_url(text)
        )
    if not parts.hostname:
        raise ValidationError("url", "has no host", "e.g. https://listener.example.com/callbacks")
    credentials = query_credentials(text)  # as the URL is masked when read back: the whole of it
    if credentials:
        # Refused, as user:password@ is: a URL is no place for a secret. Every listing of the account
        # shows it, ThingSpace, proxies and the listener's access logs keep it, and tskit masks it when
        # read back, so it could never be compared with the URL to send. ThingSpace authenticates
        # itself to a listener with the username and password it sends inside every message.
        raise ValidationError(
            "url",
            f"carries a credential in its query ({', '.join(repr(w) for w in credentials)})",
            f"no secret in the URL; {_CREDENTIALS_ALLOWED}",
            reason=Reason.CREDENTIALS_IN_URL,
            value_shown=mask_url(text),
            remedy=Remedy("listener-credentials"),
        )
    if parts.fragment:
        raise ValidationError("url", "has a '#fragment', which is never sent to a server", "drop it")
    effective = port if port is not None else (443 if parts.scheme.lower() == "https" else 80)
    if not allow_any_port and effective not in ALLOWED_LISTENER_PORTS:
        raise ValidationError(
            "url",
            f"port {effective} is not one ThingSpace delivers to",
            ALLOWED_LISTENER_PORTS_TEXT,
            reason=Reason.PORT_NOT_ALLOWED,
            value_shown=mask_url(text),
            remedy=Remedy("set-option", option="allow_any_port", value="True"),
        )
    host = _host(parts.hostname)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path, query = (quote(p, safe=_URL_SAFE_ASCII) for p in (parts.path, parts.query))
    return urlunsplit((parts.scheme.lower(), netloc, path, query, ""))


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_HOST_ALLOWED = "a host name of letters, digits and '-' in dot-separated labels of at most 63, or an IPv4/IPv6 address"
# Scripts a single host label may mix (Japanese, Korean and Chinese writing mix them); any other mix,
# e.g. Latin with Cyrillic, is how lookalike host names are made.
_SCRIPT_MIXES: Final = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
)


def _host(host: str) -> str:
    """A listener host as it is sent: lower case, IDNA form, checked label by label."""
    if ":" in host:  # an IPv6 literal (urlsplit took it out of its brackets)
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise ValidationError("url", "has a malformed IPv6 address", _HOST_ALLOWED) from None
    if not host.isascii():
        host = _idna_host(host)
    host = host.lower()
    if "%" in host:
        raise ValidationError("url", "has a percent-escape in its host name", _HOST_ALLOWED)
    labels = host.split(".")
    if len(host) > 253:
        raise ValidationError("url", f"has a host name of {len(host)} characters", "at most 253")
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        try:  # no top-level domain is numeric: this must be a dotted-quad IPv4 address
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValidationError(
                "url", "has a numeric host that is not a dotted-quad IPv4 address", _HOST_ALLOWED
            ) from None
    for number, label in enumerate(labels, 1):
        if not _LABEL.fullmatch(label):
            problem = (
                "is empty"
                if not label
                else "is too long"
                if len(label) > 63
                else "is not letters, digits and '-' (not at either end)"
            )
            raise ValidationError("url", f"label {number} of the host name {problem}", _HOST_ALLOWED)
        if label.startswith("xn--"):
            _one_script(_idna_host(label, decode=True))
    return host


def _one_script(label: str) -> None:
    """Refuse an internationalised label that mixes scripts, e.g. Latin and Cyrillic."""
    scripts = {
        unicodedata.name(ch, "?").split(" ", 1)[0].split("-", 1)[0]
        for ch in label
        if unicodedata.category(ch)[0] == "L"
    }
    if len(scripts) > 1 and not any(scripts <= mix for mix in _SCRIPT_MIXES):
        raise ValidationError(
            "url",
            f"has a host label that mixes scripts ({', '.join(sorted(scripts)).lower()}), as lookalike names do",
            "a host name in one script",
        )


def _idna_host(host: str, *, decode: bool = False) -> str:
    """A host name in its IDNA (punycode) form (or, with ``decode``, its Unicode form)."""
    try:
        if decode:
            return str(idna.decode(host))
        return str(idna.encode(host, uts46=True).decode("ascii"))
    except idna.IDNAError:
        raise ValidationError(
            "url",
            "has a host name that is not a valid internationalised domain name",
            "a host name in its IDNA form, e.g. xn--bcher-kva.example",
        ) from None


def credential(field: str, value: object) -> str:
    """Check a listener username or password: a string of at most 40 printable characters."""
    if value is None:
        return ""
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if len(value) > MAX_CREDENTIAL_LENGTH:
        # Never echo the value: it may be a password.
        raise ValidationError(field, f"is {len(value)} characters long", f"at most {MAX_CREDENTIAL_LENGTH}")
    text = plain_text(field, value, "printable characters only, no control or invisible characters")
    if text != text.strip(" "):
        raise ValidationError(
            field,
            "starts or ends with a space",
            "no space at either end: it would be sent as typed, and is easily mistyped",
        )
    return text


def _fold(text: str) -> bytes:
    """Text as a reader would take it: compatibility forms, case, invisible characters and edges dropped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if not _invisible(ch))
    return unicodedata.normalize("NFKC", text).strip().encode("utf-8", "surrogatepass")


def _invisible(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
        or 0xFE00 <= code <= 0xFE0F
        or 0xE0100 <= code <= 0xE01EF
        or 0x180B <= code <= 0x180F
        or code in (0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x17B4, 0x17B5)
    )


def not_login_credentials(username: str, password: str, *, login_username: str, login_secrets: Iterable[str]) -> None:
    """Refuse a listener username or password that is, or looks like, one of the client's login credentials.

    Verizon forbids the UWS credentials as a listener's: ThingSpace sends these values inside every
    message, so a listener (and its logs) would hold the login. Values are compared after NFKC
    normalisation, case folding and removal of invisible characters and surrounding space, so a
    lookalike (``"ＤＥＭＯ-user"``, a soft hyphen inside) is refused too. The comparison runs in
    constant time and no value is echoed.

    Args:
        username: The listener username about to be sent.
        password: The listener password about to be sent.
        login_username: The UWS user name the client logs in with.
        login_secrets: The client's secrets: application secret, UWS password, tokens.
    """
    secrets = [_fold(secret) for secret in login_secrets if secret]
    login_user = _fold(login_username) if login_username else b""
    for field, value in (("username", username), ("password", password)):
        if not value:
            continue
        given = _fold(value)
        if field == "username" and login_user and hmac.compare_digest(given, login_user):
            raise ValidationError(
                field,
                "is, or looks like, the ThingSpace (UWS) login user name",
                "a name of the listener's own",
                reason=Reason.LOGIN_CREDENTIALS_REUSED,
            )
        if any(hmac.compare_digest(given, secret) for secret in secrets):
            raise ValidationError(
                field,
                "is, or looks like, one of the ThingSpace login secrets (UWS password, application secret or token)",
                f"a {field} of the listener's own",
                reason=Reason.LOGIN_CREDENTIALS_REUSED,
            )


def path_segment(value: str) -> str:
    """Percent-encode one path parameter so that no value can reach a different path."""
    if value in ("", ".", ".."):
        raise ValidationError("path", f"{value!r} cannot be a path parameter")
    return quote(value, safe="")
