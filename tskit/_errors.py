"""The errors tskit raises, and the one place that turns a ThingSpace error response into one.

Every error derives from :class:`ThingSpaceError`::

    ThingSpaceError
    ├── ValidationError (also a ValueError)  bad input, refused before any request was sent
    │   └── ConfigurationError               credentials or settings missing or incomplete
    ├── ApiError                             ThingSpace answered with a non-2xx status
    │   ├── AuthenticationError              token or login refused, or still refused after a new login
    │   └── RateLimitError                   429 Too Many Requests, still after the allowed retries
    ├── TransportError                       no answer: connection refused, reset or dropped
    │   └── RequestTimeout                   no answer in time
    ├── UnexpectedResponseError              a 2xx answer whose body is not what the API documents
    └── UncertainListingError                listings that cannot say for certain what an account holds

No message, repr or attribute of these errors holds a secret: texts that come from a server are
cut to a readable length, stripped of control characters and scrubbed of every secret the client
knows (see :func:`scrub`).
"""

from __future__ import annotations

import functools
import html
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import quote, quote_plus, unquote

from tskit._texts import filled_in

#: How much of a server's text an error keeps.
_MAX_TEXT: Final = 300
#: How much of an answer's body an error quotes when the body could not be read.
_MAX_EXCERPT: Final = 80
# Values that are secret by their name, in JSON, form or header-like text, even when the client does
# not know them (a listing it could not parse, a token it never saw): the value is replaced.
_SECRET_FIELD = re.compile(
    r"""(?ix)
    ( ["']?(?<!/)(?:password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|sessiontoken|
         authorization|vz-m2m-token)["']? \s*[:=]\s* )  # not after "/": ".../oauth2/token: could not" is a path
    ( "(?:[^"\\]|\\.)*"? | '[^']*'? | (?:bearer\s+|basic\s+)?[^\s,;&}<]* )
    """
)
# User info in a URL, never shown: after a scheme with any slashes or backslashes (``https://``,
# ``https:\\``, ``https:``) or after a bare ``//``, anywhere in a text (also in another URL's query).
# The work stays linear in the text's length, whatever a hostile server sends: a scheme starts only
# where a run of scheme characters starts, and user and password are bounded (a password as long as
# the longest URL tskit registers), so no part of a text is scanned again from each of its characters.
_USERINFO = re.compile(
    r"""(?ix)
    (?P<lead> (?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:[\\/]* | (?<![\w:/\\])[\\/]{2} )
    (?P<user> [^\s/\\?#@:]{0,256}+ )
    (?: : (?P<password> [^\s/\\?#@]{0,2048}+ ) )?
    @
    """
)
# A query parameter anywhere in a text (a whole URL or a URL inside a message): its name and value.
# Bounded and possessive, so the work stays linear in the text's length.
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#?\s\"'<>/\\]{1,128}+)=(?P<value>[^&;#\s\"'<>]*+)")
# Query parameter names that mark a credential (compared in lower case, separators and camelCase
# taken as word breaks). A name is a credential when, whole or as its last word, it is one of
# _CREDENTIAL_WORDS, or when it ends in one of _CREDENTIAL_ENDINGS written together ("accesstoken").
# The list follows where webhook receivers take a secret: passwords (password, passwd, pwd, pass,
# passphrase), OAuth and bearer tokens (token, access_token, id_token, jwt, bearer), API keys (key,
# apikey, api_key, subscription-key, x-api-key), shared secrets (secret, client_secret, hub.secret),
# signatures of signed URLs (sig of Azure SAS, signature, X-Amz-Signature, X-Goog-Signature,
# X-Amz-Credential, X-Amz-Security-Token), Azure Functions' key (code) and auth. A false positive only
# masks a value; a missed one shows a secret, so the list leans to more.
_CREDENTIAL_WORDS: Final = frozenset(
    {
        "password", "passwd", "pwd", "pass", "passphrase", "secret", "token", "jwt", "bearer", "key", "apikey",
        "sig", "signature", "credential", "credentials", "auth", "authorization", "code",
    }
)  # fmt: skip
_CREDENTIAL_ENDINGS: Final = ("password", "passwd", "secret", "token", "apikey", "signature", "credential")
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_XML_CODE = re.compile(r"<(?:\w+:)?code>([^<]{1,100})</(?:\w+:)?code>")
_XML_MESSAGE = re.compile(r"<(?:\w+:)?message>([^<]{1,300})</(?:\w+:)?message>")
_XML_DESCRIPTION = re.compile(r"<(?:\w+:)?description>([^<]{1,300})</(?:\w+:)?description>")


class Reason(StrEnum):
    """Why an error happened, as a stable word: what programs, the CLI and the widgets decide on.

    The values never change once released; a new cause gets a new value. The documentation's table
    of reasons lists each with what to do.
    """

    #: No more precise reason is known (the base class's default).
    ERROR = "error"
    # -- input, refused before anything was sent
    INVALID_VALUE = "invalid-value"
    MISSING_CREDENTIALS = "missing-credentials"
    PORT_NOT_ALLOWED = "port-not-allowed"
    UNKNOWN_SERVICE = "unknown-service"
    # -- logging in
    LOGIN_REFUSED = "login-refused"
    USER_LOCKED = "user-locked"
    THROTTLED = "throttled"
    THROTTLE_OUTLASTS_DEADLINE = "throttle-outlasts-deadline"
    #: A 4xx answer to a login that may be a wrong password: it counts as a failed login.
    LOGIN_UNCERTAIN = "login-uncertain"
    #: The user's failed logins in a row reached tskit's limit: no run sends another.
    TOO_MANY_FAILED_LOGINS = "too-many-failed-logins"
    #: A login has just failed: new calls fail at once until the short cooldown ends.
    LOGIN_COOLDOWN = "login-cooldown"
    # -- answers and transport
    API_ERROR = "api-error"
    RATE_LIMITED = "rate-limited"
    NOT_REACHED = "not-reached"
    TIMEOUT = "timeout"
    UNEXPECTED_ANSWER = "unexpected-answer"
    # -- listings
    UNCONFIRMED = "unconfirmed"
    LISTINGS_DISAGREE = "listings-disagree"


@dataclass(frozen=True)
class Remedy:
    """What the user can do about an error, as data; each surface says it in its own words.

    Attributes:
        action: A stable word for the step: ``"set-option"`` (``option`` to ``value``), ``"reset-login"``,
            ``"fix-credentials"``, ``"wait"`` (``seconds``), ``"longer-timeout"``, ``"choose-from"``
            (``value`` lists what is allowed), ``"run-again"``, …
        option: The option concerned, by its Python name (``"allow_any_port"``), or ``""``.
        value: The value to give it, or what is allowed, as text; ``""`` when none.
        seconds: For ``"wait"``: how long.
    """

    action: str
    option: str = ""
    value: str = ""
    seconds: float | None = None


class ThingSpaceError(Exception):
    """Base class of every error tskit raises.

    Every error carries its meaning as data, and its message is one rendering of it.

    Attributes:
        reason: Why, as a stable :class:`Reason`.
        field: The input at fault, by its Python name (``"url"``), or ``None``.
        value_shown: The offending value as it may be shown (secrets masked), or ``None``.
        remedy: What to do about it, or ``None``.
        may_have_applied: For a change: whether ThingSpace may hold it although the call failed.
    """

    reason: str = Reason.ERROR  # a Reason; subclasses with reasons of their own document them
    field: str | None = None
    value_shown: str | None = None
    remedy: Remedy | None = None
    may_have_applied: bool = False


class ValidationError(ThingSpaceError, ValueError):
    """Input that ThingSpace would refuse or misread; nothing was sent.

    Attributes:
        field: The name of the offending argument, e.g. ``"url"``.
        allowed: What the field accepts, in plain words.
    """

    field: str

    def __init__(self, field: str, problem: str, allowed: str = "") -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        text = f"{field}: {problem}"
        if allowed:
            text += f" ({allowed})"
        super().__init__(text)


class ConfigurationError(ValidationError):
    """Credentials or settings are missing or incomplete."""


class ApiError(ThingSpaceError):
    """ThingSpace answered a request with a non-2xx status.

    Attributes:
        status_code: The HTTP status, e.g. ``400``.
        error_code: ThingSpace's code, e.g. ``"UnifiedWebService.REQUEST_FAILED.AccountNotFound"``,
            the gateway's fault code (``"900901"``) or OAuth's ``error`` (``"invalid_client"``);
            ``""`` when the body carried none.
        error_message: ThingSpace's message in plain words (scrubbed of secrets).
        method: The HTTP method of the request that failed.
        path: The path of the request that failed, e.g. ``"/api/m2m/v1/callbacks/0000123456-00001"``.
        retry_after: Seconds the server asked to wait before trying again, if it said.
    """

    def __init__(
        self,
        status_code: int,
        error_code: str,
        error_message: str,
        *,
        method: str,
        path: str,
        retry_after: float | None = None,
        note: str = "",
    ) -> None:
        self.status_code = status_code
        self.error_code = error_code
        self.error_message = error_message
        self.method = method
        self.path = path
        self.retry_after = retry_after
        text = f"ThingSpace answered {status_code} to {method} {path}"
        if error_code:
            text += f": {error_code}"
        if error_message:
            text += f" - {error_message}"
        if note:
            text += f"{'' if text.endswith('.') else '.'} {note}"  # one full stop after a message ending in one
        super().__init__(text)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, error_code={self.error_code!r}, "
            f"method={self.method!r}, path={self.path!r})"
        )


class AuthenticationError(ApiError):
    """The OAuth token request or the M2M session login was refused.

    A refused login is never retried automatically: ThingSpace locks a user after five failed
    logins in a row. After a refusal the client refuses to log in again until its credentials
    are replaced (see ``ThingSpaceAuth.reset``).
    """


class RateLimitError(ApiError):
    """ThingSpace kept answering 429 Too Many Requests."""


class LoginThrottled(AuthenticationError, RateLimitError):
    """ThingSpace throttled logins, and the call's deadline leaves too little time to wait it out.

    Nothing was sent for this call. A caller with a longer timeout, or a later run, waits the
    throttle out and logs in.

    Attributes:
        reason: ``"throttle-outlasts-deadline"``.
        retry_after: Seconds of the throttle's wait still to go when the call gave up.
        time_left: Seconds that were left of the call's deadline.
        shared: Whether the throttle came from another process or run (its record on disk).
    """

    reason = Reason.THROTTLE_OUTLASTS_DEADLINE

    def __init__(self, error: ApiError, *, username: str, retry_after: float, time_left: float, shared: bool) -> None:
        left = f"longer than the {max(time_left, 0.0):.1f} s left of this call's timeout"
        if shared:
            note = (
                f"Not sent: ThingSpace throttled a login of user {username!r} from another process or run and "
                f"asked to wait; {retry_after:.1f} s of that wait are left, {left}. Run again later, or allow a "
                "longer timeout"
            )
        else:
            note = (
                f"ThingSpace throttled the login of user {username!r} and asked to wait {retry_after:.1f} s, {left}: "
                "not tried again. Run again later, or allow a longer timeout"
            )
        super().__init__(
            error.status_code,
            error.error_code,
            error.error_message,
            method=error.method,
            path=error.path,
            retry_after=retry_after,
            note=note,
        )
        if shared:  # nothing was answered to this process: the sentence alone
            self.args = (note,)
        self.time_left = max(time_left, 0.0)
        self.shared = shared


class TransportError(ThingSpaceError):
    """The request got no usable answer: the connection failed, was refused or was dropped.

    Attributes:
        method: The HTTP method of the request.
        path: The path of the request.
    """

    def __init__(self, message: str, *, method: str, path: str) -> None:
        self.method = method
        self.path = path
        super().__init__(f"{method} {path}: {message}")


class RequestTimeout(TransportError):
    """ThingSpace did not answer in time."""


class UnexpectedResponseError(ThingSpaceError):
    """A successful status with a body that is not what the API documents.

    Attributes:
        status_code: The HTTP status of the response.
        method: The HTTP method of the request.
        path: The path of the request.
    """

    def __init__(self, problem: str, *, status_code: int, method: str, path: str) -> None:
        self.status_code = status_code
        self.method = method
        self.path = path
        super().__init__(f"unexpected answer {status_code} to {method} {path}: {problem}")


class UncertainListingError(ThingSpaceError):
    """An account whose listings could not say for certain what it holds (never "no listeners").

    Attributes:
        account_name: The account listed.
        reason: Why, as a stable word: ``"unconfirmed"`` (an answer showing no listener, or
            lacking one that was expected, and no further listing could be read to confirm it) or
            ``"listings-disagree"`` (successive listings did not agree on which services are there).
    """

    def __init__(self, account_name: str, reason: str, detail: str) -> None:
        self.account_name = account_name
        self.reason = Reason(reason)
        self.detail = detail
        super().__init__(f"the listings of {account_name} are uncertain ({reason}): {detail}")


def mask_userinfo(url: str) -> str:
    """A text with the password of every URL ``user:password@`` part in it masked (the user kept).

    tskit never sends such URLs, but one registered by other means may come back in a listing.
    """

    def mask(found: re.Match[str]) -> str:
        if not found["password"]:
            return found.group()
        return f"{found['lead']}{found['user']}:********@"

    return _USERINFO.sub(mask, url)


def userinfo_passwords(text: str) -> list[str]:
    """The passwords of every URL ``user:password@`` part in a text."""
    return [found["password"] for found in _USERINFO.finditer(text) if found["password"]]


def credential_word(name: str) -> str | None:
    """The credential word a query parameter name is, or ends in (``"api_key"`` gives ``"key"``), or ``None``.

    Names are compared percent-decoded and in lower case; see ``_CREDENTIAL_WORDS`` for the list and why.
    """
    words = [w.lower() for w in _WORD_BREAK.split(unquote(name)) if w]
    if not words:
        return None
    whole = "".join(words)
    if whole in _CREDENTIAL_WORDS:
        return whole
    if words[-1] in _CREDENTIAL_WORDS:
        return words[-1]
    return next((ending for ending in _CREDENTIAL_ENDINGS if whole.endswith(ending)), None)


def query_credentials(text: str) -> list[str]:
    """The credential words of the query parameters in a URL (or any text) that carry a value.

    Only words of tskit's own list are returned, never a name as written, so the result may be shown.
    """
    found = (credential_word(m["name"]) for m in _QUERY_PARAM.finditer(text) if m["value"])
    return list(dict.fromkeys(word for word in found if word))


def url_secrets(text: str) -> list[str]:
    """Every secret value of the URLs in a text: ``user:password@`` passwords and credential query values."""
    query = [m["value"] for m in _QUERY_PARAM.finditer(text) if m["value"] and credential_word(m["name"])]
    return userinfo_passwords(text) + [v for value in query for v in dict.fromkeys((value, unquote(value)))]


def mask_url(text: str, mask: str = "********") -> str:
    """A URL (or any text) with its secrets masked: the password of ``user:password@``, credential query values.

    The one function that hides what a URL may hold: listings, frames, snapshots, findings, exports
    and widgets show URLs through it. Names are kept (``?token=********``), so that a reader, and the
    audit's ``credentials-in-url-query`` rule, can still tell what was there.
    """

    def hide(found: re.Match[str]) -> str:
        if not found["value"] or not credential_word(found["name"]):
            return found.group()
        return f"{found['lead']}{found['name']}={mask}"

    return _QUERY_PARAM.sub(hide, mask_userinfo(text))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Make a server's text safe to show: no control characters, no known secret, short.

    A secret is found in any form a server or tskit itself may give it (see :func:`secret_forms`),
    in any case; one shorter than 3 characters only as a whole word. A text that is one of
    ThingSpace's fixed texts (see :mod:`tskit._texts`) keeps its words, whatever the secrets are:
    they came from no request; only a value filled into it is scrubbed.

    Args:
        text: Text that came from a server.
        secrets: Secret values to replace by ``***`` wherever they occur.

    Returns:
        The cleaned text, at most about 300 characters long.
    """
    fixed = filled_in(text)
    if fixed is not None:  # one of ThingSpace's fixed texts: its words are kept, a value filled in is scrubbed
        words, value = fixed
        return words if value is None else words.format(scrub(value, secrets))
    known = sorted({s for s in secrets if s}, key=len, reverse=True)  # longest first: a longer one holds a shorter
    text = _replace_secrets(text, known, raw=True)
    # The same text decoded (HTML entities, JSON and percent escapes, compatibility forms): shown
    # decoded only when a secret hides behind an encoding.
    decoded = _decoded(text)
    if decoded != text:
        cleaned = _replace_secrets(decoded, known, raw=False)
        if cleaned != decoded:
            text = cleaned
    text = _SECRET_FIELD.sub(r"\1***", text)
    text = mask_url(text, "***")
    text = _USERINFO.sub(r"\g<lead>***@", text)
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > _MAX_TEXT:
        text = text[: _MAX_TEXT - 3] + "..."
    return text


@functools.lru_cache(maxsize=4096)
def secret_forms(secret: str) -> tuple[str, ...]:
    r"""Every form in which a secret may appear in a text: the one place that lists them.

    The secret itself and its compatibility form (NFKC: fullwidth letters), each as JSON escapes it
    (``\\"``, ``\\\\``, ``\\u00e4``), percent-encoded (``%C3%A4``, ``+`` for a space), and as HTML or
    XML escapes it (``&amp;``, ``&quot;``). :func:`scrub` matches them ignoring case.
    """
    forms: dict[str, None] = {}
    for base in dict.fromkeys((secret, unicodedata.normalize("NFKC", secret))):
        for form in (
            base,
            json.dumps(base)[1:-1],
            json.dumps(base, ensure_ascii=False)[1:-1],
            quote(base, safe=""),
            quote(base),
            quote_plus(base),
            html.escape(base),
            html.escape(base, quote=False),
        ):
            forms[form] = None
    return tuple(forms)


def _replace_secrets(text: str, secrets: list[str], *, raw: bool) -> str:
    """``text`` with each form of each secret replaced; a secret under 3 characters only as a whole word."""
    folded = text.casefold()
    for secret in secrets:
        forms = secret_forms(secret) if raw else (unicodedata.normalize("NFKC", secret),)
        for form in forms:
            if form.casefold() not in folded:  # a quick look first: most secrets are not in most texts
                continue
            pattern = re.escape(form)
            if len(secret) < 3:
                pattern = rf"(?<!\w){pattern}(?!\w)"
            text = re.sub(pattern, "***", text, flags=re.IGNORECASE)
            folded = text.casefold()
            if len(secret) >= 3 and form.casefold() in folded:
                # Only a full case folding finds it (ß written SS): show the text folded, without it.
                text = folded = folded.replace(form.casefold(), "***")
    return text


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _decoded(text: str) -> str:
    r"""``text`` with HTML entities, JSON ``\uXXXX`` and percent escapes decoded, in NFKC form."""
    text = html.unescape(text)
    text = _JSON_ESCAPE.sub(lambda m: chr(int(m[1], 16)), text)
    text = unquote(text, errors="replace")
    return unicodedata.normalize("NFKC", text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))


def excerpt(body: bytes | str, secrets: Iterable[str] = ()) -> str:
    """A short, scrubbed quote of an answer's body for an error message (about 80 characters)."""
    text = body if isinstance(body, str) else body.decode("utf-8", errors="replace")
    text = scrub(text, secrets)
    if len(text) > _MAX_EXCERPT:
        text = text[: _MAX_EXCERPT - 3] + "..."
    return text


def _as_text(value: object) -> str:
    if value is None:
        return ""
    # Unescaped, so that a secret inside reads as it was sent and is scrubbed in that form.
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def parse_error_body(body: bytes) -> tuple[str, str]:
    """Read ``(error_code, error_message)`` from any of ThingSpace's error bodies.

    ThingSpace uses three JSON shapes: ``{"errorCode", "errorMessage"}`` from the API itself,
    ``{"fault": {"code", "message", "description"}}`` from its API gateway, and OAuth's
    ``{"error", "error_description"}`` from the token endpoint. The gateway may also answer
    in XML (``<am:fault>``) or plain text. Unknown bodies give ``("", <the text>)``.
    """
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        if "errorCode" in data or "errorMessage" in data:
            return _as_text(data.get("errorCode")), _as_text(data.get("errorMessage"))
        fault = data.get("fault")
        if isinstance(fault, dict):
            message = _as_text(fault.get("message"))
            description = _as_text(fault.get("description"))
            if description:
                message = f"{message}: {description}" if message else description
            return _as_text(fault.get("code")), message
        if "error" in data:
            return _as_text(data.get("error")), _as_text(data.get("error_description"))
    code = _XML_CODE.search(text)
    if code:
        parts = [m.group(1) for m in (_XML_MESSAGE.search(text), _XML_DESCRIPTION.search(text)) if m]
        return code.group(1).strip(), ": ".join(p.strip() for p in parts)
    return "", text


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(
    status_code: int,
    body: bytes,
    *,
    method: str,
    path: str,
    retry_after: str | None = None,
    reason: str = "",
    secrets: Iterable[str] = (),
    cls: type[ApiError] | None = None,
    note: str = "",
) -> ApiError:
    """Build the typed error for a non-2xx answer. The only place error bodies are read."""
    secrets = tuple(secrets)
    code, message = parse_error_body(body)
    code, message = scrub(code, secrets)[:100], scrub(message, secrets)
    if not code and not message:
        message = reason
    if cls is None:
        cls = {401: AuthenticationError, 429: RateLimitError}.get(status_code, ApiError)
    return cls(
        status_code,
        code,
        message,
        method=method,
        path=path,
        retry_after=parse_retry_after(retry_after),
        note=note,
    )
