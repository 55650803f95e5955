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

Every error carries its meaning as data (``reason``, ``field``, ``value_shown``, ``remedy``,
``may_have_applied``); its message is the Python rendering of those fields (:meth:`ThingSpaceError.render`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from tskit._reasons import PYTHON_WORDS, WHAT_TO_DO, FileReason, Reason, Remedy, Vocabulary, sentence
from tskit._scrub import (
    credential_word,
    excerpt,
    mask_url,
    mask_userinfo,
    query_credentials,
    scrub,
    secret_forms,
    url_secrets,
    userinfo_passwords,
)

# The meaning of an error lives in _reasons, its scrubbing in _scrub; both are part of this module's face.
__all__ = [
    "PYTHON_WORDS",
    "WHAT_TO_DO",
    "ApiError",
    "AuthenticationError",
    "ConfigurationError",
    "FileReason",
    "LoginThrottled",
    "RateLimitError",
    "Reason",
    "Remedy",
    "RequestTimeout",
    "ThingSpaceError",
    "TransportError",
    "UncertainListingError",
    "UnexpectedResponseError",
    "ValidationError",
    "Vocabulary",
    "credential_word",
    "error_from_response",
    "excerpt",
    "mask_url",
    "mask_userinfo",
    "parse_error_body",
    "parse_retry_after",
    "query_credentials",
    "scrub",
    "secret_forms",
    "sentence",
    "url_secrets",
    "userinfo_passwords",
]

_XML_CODE = re.compile(r"<(?:\w+:)?code>([^<]{1,100})</(?:\w+:)?code>")
_XML_MESSAGE = re.compile(r"<(?:\w+:)?message>([^<]{1,300})</(?:\w+:)?message>")
_XML_DESCRIPTION = re.compile(r"<(?:\w+:)?description>([^<]{1,300})</(?:\w+:)?description>")


class ThingSpaceError(Exception):
    """Base class of every error tskit raises.

    Every error carries its meaning as data, and its message is one rendering of it: ``str(error)``
    is Python's (:meth:`render` with :data:`~tskit._reasons.PYTHON_WORDS`); the command line and the
    widgets render the same fields in their own words.

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

    def describe(self, words: Vocabulary) -> str:
        """What happened, in a surface's words, without the remedy (subclasses naming a field override it)."""
        del words  # the plain text names no field, option or step
        return super().__str__()

    def render(self, words: Vocabulary = PYTHON_WORDS) -> str:
        """The whole message in a surface's words: what happened, then what to do."""
        text = self.describe(words)
        return sentence(text, words.remedy_words(self.remedy)) if self.remedy is not None else text

    def __str__(self) -> str:
        return self.render()


class ValidationError(ThingSpaceError, ValueError):
    """Input that ThingSpace would refuse or misread; nothing was sent.

    Attributes:
        field: The name of the offending argument, e.g. ``"url"``.
        problem: What is wrong with it, in plain words naming no option.
        allowed: What the field accepts, in plain words naming no option.
        value_shown: The value as it may be shown (masked), when showing it helps; else ``None``.
    """

    field: str
    reason: str = Reason.INVALID_VALUE

    def __init__(
        self,
        field: str,
        problem: str,
        allowed: str = "",
        *,
        reason: str | None = None,
        value_shown: str | None = None,
        remedy: Remedy | None = None,
    ) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        if reason is not None:
            self.reason = reason
        self.value_shown = value_shown
        self.remedy = remedy
        super().__init__(self.render())

    def renamed(self, field: str) -> ValidationError:
        """The same refusal said of another field (a place in a file, the list a value came in)."""
        return ValidationError(
            field, self.problem, self.allowed, reason=self.reason, value_shown=self.value_shown, remedy=self.remedy
        )

    def describe(self, words: Vocabulary) -> str:
        """``field: problem`` with the field as the surface names it."""
        return f"{words.field_words(self.field)}: {self.problem}"

    def render(self, words: Vocabulary = PYTHON_WORDS) -> str:
        """``field: problem (allowed; remedy)``, each part in the surface's words."""
        remedy = words.remedy_words(self.remedy) if self.remedy is not None else ""
        extra = "; ".join(part for part in (self.allowed, remedy) if part)
        return f"{self.describe(words)} ({extra})" if extra else self.describe(words)


class ConfigurationError(ValidationError):
    """Credentials or settings are missing or incomplete."""

    reason: str = Reason.MISSING_CREDENTIALS


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
        reason: ``"api-error"`` unless a kind says more.
    """

    reason: str = Reason.API_ERROR

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
        reason: str | None = None,
        remedy: Remedy | None = None,
    ) -> None:
        if reason is not None:
            self.reason = reason
        self.remedy = remedy
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

    Attributes:
        reason: ``"login-refused"``; ``"user-locked"`` when ThingSpace's code says the user is locked,
            ``"throttled"`` for a 429, unless the login flow says more.
    """

    reason: str = Reason.LOGIN_REFUSED

    def __init__(self, status_code: int, error_code: str, error_message: str, **kwargs: Any) -> None:
        if kwargs.get("reason") is None and type(self).reason == Reason.LOGIN_REFUSED:  # a kind may say more
            if "locked" in error_code.lower():
                kwargs["reason"] = Reason.USER_LOCKED
            elif status_code == 429:
                kwargs["reason"] = Reason.THROTTLED
        super().__init__(status_code, error_code, error_message, **kwargs)


class RateLimitError(ApiError):
    """ThingSpace kept answering 429 Too Many Requests (``reason`` ``"rate-limited"``)."""

    reason: str = Reason.RATE_LIMITED


class LoginThrottled(AuthenticationError, RateLimitError):
    """ThingSpace throttled logins, and the call's deadline leaves too little time to wait it out.

    Nothing was sent for this call. A caller with a longer timeout, or a later run, waits the
    throttle out and logs in.

    Attributes:
        reason: ``"throttle-outlasts-deadline"``.
        retry_after: Seconds of tskit's wait still to go when the call gave up (what ThingSpace asked,
            capped at a minute).
        asked: Seconds ThingSpace's ``Retry-After`` asked to wait, or ``None`` when it did not say
            (or the throttle came from another process or run).
        time_left: Seconds that were left of the call's deadline.
        shared: Whether the throttle came from another process or run (its record on disk).
    """

    reason = Reason.THROTTLE_OUTLASTS_DEADLINE

    def __init__(
        self,
        error: ApiError,
        *,
        username: str,
        retry_after: float,
        time_left: float,
        shared: bool,
        asked: float | None = None,
    ) -> None:
        left = f"longer than the {max(time_left, 0.0):.1f} s left of this call's timeout"
        if shared:
            note = (
                f"Not sent: ThingSpace throttled a login of user {username!r} from another process or run; "
                f"{retry_after:.1f} s of that wait are left, {left}"
            )
        else:
            said = f" and asked to wait {asked:g} s" if asked is not None else ""
            note = (
                f"ThingSpace throttled the login of user {username!r}{said}; tskit waits {retry_after:.1f} s "
                f"before the next login, {left}: not tried again"
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
        self.asked = None if shared else asked


class TransportError(ThingSpaceError):
    """The request got no usable answer: the connection failed, was refused or was dropped.

    Attributes:
        reason: ``"not-reached"`` (``"timeout"`` for :class:`RequestTimeout`).
        method: The HTTP method of the request.
        path: The path of the request.
    """

    reason: str = Reason.NOT_REACHED

    def __init__(self, message: str, *, method: str, path: str) -> None:
        self.method = method
        self.path = path
        super().__init__(f"{method} {path}: {message}")


class RequestTimeout(TransportError):
    """ThingSpace did not answer in time."""

    reason: str = Reason.TIMEOUT


class UnexpectedResponseError(ThingSpaceError):
    """A successful status with a body that is not what the API documents (``reason`` ``"unexpected-answer"``).

    Attributes:
        status_code: The HTTP status of the response.
        method: The HTTP method of the request.
        path: The path of the request.
    """

    reason: str = Reason.UNEXPECTED_ANSWER

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
