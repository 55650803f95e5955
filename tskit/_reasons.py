"""Why an error happened and what to do about it, as data; and the words each surface says it in.

An error's meaning is its :class:`Reason`, its field and the value shown, and a :class:`Remedy`.
Python's message, the command line's words and the widgets' words are three renderings of those
same fields, each through a :class:`Vocabulary` that says how its surface names a field, an option
and a step: no surface ever reads another's sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Reason(StrEnum):
    """Why an error happened, as a stable word: what programs, the CLI and the widgets decide on.

    The values never change once released; a new cause gets a new value. The documentation's table
    of reasons lists each with what to do (:data:`WHAT_TO_DO`).
    """

    #: No more precise reason is known (the base class's default).
    ERROR = "error"
    # -- input, refused before anything was sent
    INVALID_VALUE = "invalid-value"
    MISSING_CREDENTIALS = "missing-credentials"
    PORT_NOT_ALLOWED = "port-not-allowed"
    UNKNOWN_SERVICE = "unknown-service"
    CREDENTIALS_IN_URL = "credentials-in-url"
    LOGIN_CREDENTIALS_REUSED = "login-credentials-reused"
    # -- logging in
    LOGIN_REFUSED = "login-refused"
    USER_LOCKED = "user-locked"
    THROTTLED = "throttled"
    THROTTLE_OUTLASTS_DEADLINE = "throttle-outlasts-deadline"
    LOGIN_ABANDONED = "login-abandoned"
    #: A token request or login failed for a passing reason (a server fault): not a verdict on the credentials.
    LOGIN_FAILED = "login-failed"
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
    ACCOUNTS_UNREAD = "accounts-unread"
    # -- desired state: plans, applies, rotations, journals
    STALE_PLAN = "stale-plan"
    PLAN_USED = "plan-used"
    LOCKED = "locked"
    DECLINED = "declined"
    # -- the callback listener's store
    MESSAGE_REFUSED = "message-refused"
    STORE_UNAVAILABLE = "store-unavailable"
    STORE_FAILED = "store-failed"
    STORE_UNOPENED = "store-unopened"


class FileReason(StrEnum):
    """What is wrong with a file tskit reads or writes (a desired-state file, a journal), as a stable word.

    The ``reason`` of a desired-state file's error (``FileError``) and of a journal's (``JournalError``),
    and of a journal line skipped (``JournalProblem``).
    """

    MISSING = "missing"
    UNREADABLE = "unreadable"
    NOT_A_FILE = "not-a-file"
    TOO_LARGE = "too-large"
    TOO_DEEP = "too-deep"
    TOO_MANY_KEYS = "too-many-keys"
    LINE_TOO_LONG = "line-too-long"
    NOT_UTF8 = "not-utf8"
    NOT_TOML = "not-toml"
    NOT_A_JOURNAL = "not-a-journal"
    IN_USE = "in-use"
    DISK_FULL = "disk-full"
    UNWRITABLE = "unwritable"
    TORN = "torn"
    NOT_AN_EVENT = "not-an-event"
    WRONG_TYPE = "wrong-type"


#: What to do for each reason, in plain words: the documentation's table of reasons.
WHAT_TO_DO: Final[Mapping[str, str]] = MappingProxyType(
    {
        Reason.ERROR: "Read the message; report it if it says nothing you can act on.",
        Reason.INVALID_VALUE: "Correct the value of `field`; the message says what it accepts. Nothing was sent.",
        Reason.MISSING_CREDENTIALS: "Give the credential named by `field`, or unset every THINGSPACE_* variable "
        "for the embedded simulator.",
        Reason.PORT_NOT_ALLOWED: "Use a port ThingSpace delivers to, or set `allow_any_port` for a simulator or proxy.",
        Reason.UNKNOWN_SERVICE: "Choose a service of `SERVICE_CATALOGUE`, or set `allow_unknown_service` for a "
        "service newer than tskit.",
        Reason.CREDENTIALS_IN_URL: "Take the secret out of the URL; give the listener's username and password, "
        "which ThingSpace sends inside each message.",
        Reason.LOGIN_CREDENTIALS_REUSED: "Give the listener a username and password of its own, never the "
        "ThingSpace login's.",
        Reason.LOGIN_REFUSED: "Fix the credentials (for a refused token request: the application's client id and "
        "secret); a refusal recorded on disk is lifted by `tskit reset-login` (or `ts.client.auth.reset()`). Five "
        "failed logins lock the user.",
        Reason.USER_LOCKED: "Have Verizon support unlock the user, then run `tskit reset-login` (or call "
        "`ts.client.auth.reset()`).",
        Reason.THROTTLED: "Wait `retry_after` seconds; tskit waits by itself when the call's timeout allows.",
        Reason.THROTTLE_OUTLASTS_DEADLINE: "Run again later, or allow a longer timeout. Nothing was sent.",
        Reason.LOGIN_ABANDONED: "Call again: the login was given up before it was answered.",
        Reason.LOGIN_FAILED: "Call again in a few seconds: ThingSpace failed for a passing reason, not a verdict on "
        "the credentials.",
        Reason.LOGIN_UNCERTAIN: "Check the user name and password: ThingSpace's answer may mean a wrong one, and it "
        "counts as a failed login.",
        Reason.TOO_MANY_FAILED_LOGINS: "Fix the credentials, then run `tskit reset-login`: no run logs in again "
        "before, so that ThingSpace never locks the user.",
        Reason.LOGIN_COOLDOWN: "Wait a few seconds and call again: a login has just failed.",
        Reason.API_ERROR: "Read `status_code` and `error_code`: ThingSpace refused the request.",
        Reason.RATE_LIMITED: "Run again later, or with less concurrency.",
        Reason.NOT_REACHED: "Check the network and the base URL. For a change, `may_have_applied` says whether "
        "to list the account before trying again.",
        Reason.TIMEOUT: "Allow a longer timeout. A change may or may not have happened: list the account to see.",
        Reason.UNEXPECTED_ANSWER: "Run again; if it persists, ThingSpace (or a proxy) answers something its API "
        "does not document.",
        Reason.UNCONFIRMED: "Run again: no listing could confirm what the account holds (never taken as empty).",
        Reason.LISTINGS_DISAGREE: "Run again: successive listings disagreed on what the account holds.",
        Reason.ACCOUNTS_UNREAD: "Run again for the accounts named, or set `allow_partial` to go on without them.",
        Reason.STALE_PLAN: "Plan again: the account changed since the plan was made.",
        Reason.PLAN_USED: "Plan again: a plan is applied once.",
        Reason.LOCKED: "Wait for the other apply or rotation of the account to finish, then run again.",
        Reason.DECLINED: "Nothing was changed; follow the message (e.g. `allow_http` for an http listener).",
        Reason.MESSAGE_REFUSED: "Nothing to do for the others: this one message cannot be stored (answered 400).",
        Reason.STORE_UNAVAILABLE: "Nothing to do: ThingSpace sends the message again (answered 503).",
        Reason.STORE_FAILED: "Open a new store (restart the listener) once the cause in the log is fixed.",
        Reason.STORE_UNOPENED: "Make the store's folder exist and writable, or name another file.",
        FileReason.MISSING: "Name a file that exists.",
        FileReason.UNREADABLE: "Make the file readable by this user.",
        FileReason.NOT_A_FILE: "Name a regular file, not a folder, FIFO or device.",
        FileReason.TOO_LARGE: "Use a smaller file (or start a new journal).",
        FileReason.TOO_DEEP: "Nest keys less deeply.",
        FileReason.TOO_MANY_KEYS: "Split the file: it has more keys than tskit reads.",
        FileReason.LINE_TOO_LONG: "Shorten the line named.",
        FileReason.NOT_UTF8: "Save the file as UTF-8.",
        FileReason.NOT_TOML: "Fix the TOML syntax at the line named.",
        FileReason.NOT_A_JOURNAL: "Name a journal tskit wrote.",
        FileReason.IN_USE: "Wait for the other apply using the journal to finish.",
        FileReason.DISK_FULL: "Free disk space, then run again.",
        FileReason.UNWRITABLE: "Make the folder writable, or name another journal.",
        FileReason.TORN: "Nothing to do: a line cut short by a crash is skipped.",
        FileReason.NOT_AN_EVENT: "Nothing to do: a line that is not an event is skipped.",
        FileReason.WRONG_TYPE: "Nothing to do: a line with a field of the wrong type is skipped.",
    }
)


@dataclass(frozen=True)
class Remedy:
    """What the user can do about an error, as data; each surface says it in its own words.

    Attributes:
        action: A stable word for the step (see :data:`ACTIONS`): ``"set-option"`` (``option`` to
            ``value``), ``"reset-login"``, ``"unlock-user"``, ``"clear-failed-logins"``, ``"fix-credentials"``,
            ``"fix-app-credentials"``, ``"listener-credentials"``,
            ``"set-variable"`` (``option`` names the variable), ``"wait"`` (``seconds``),
            ``"longer-timeout"``, ``"choose-from"`` (``value`` names the list; ``option``, if set, the
            option that accepts a value outside it), ``"plan-again"``, ``"run-again"``.
        option: The option concerned, by its Python name (``"allow_any_port"``), or ``""``.
        value: The value to give it, or what is allowed, as text; ``""`` when none.
        seconds: For ``"wait"``: how long.
    """

    action: str
    option: str = ""
    value: str = ""
    seconds: float | None = None


#: Every remedy action, and what it asks for.
ACTIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "set-option": "give `option` the value `value`",
        "set-variable": "set the variable (or argument) `option`",
        "choose-from": "choose a value from the list `value` (or set `option` for one outside it)",
        "reset-login": "fix the credentials, then lift the recorded refusal (`tskit reset-login`, "
        "`ts.client.auth.reset()`)",
        "unlock-user": "have Verizon support unlock the user, then lift the recorded refusal (`tskit reset-login`, "
        "`ts.client.auth.reset()`)",
        "clear-failed-logins": "check the credentials, then forget the failed logins on record (`tskit reset-login`)",
        "fix-credentials": "correct the user name and password",
        "fix-app-credentials": "correct the application's client id and secret",
        "listener-credentials": "give the listener's username and password as their own fields",
        "wait": "wait `seconds`",
        "longer-timeout": "allow the call more time",
        "plan-again": "make a new plan",
        "new-journal": "start a new journal (another path)",
        "run-again": "run the same again later",
    }
)

# Why a surface would set an option: the same in every surface, so said once.
_OPTION_PURPOSE: Final = {
    "allow_any_port": "to skip this check",
    "allow_unknown_service": "for a service newer than tskit",
    "allow_http": "to send it anyway",
    "allow_partial": "to export the others",
    "prune": "to delete them",
}


@dataclass(frozen=True)
class Vocabulary:
    """How one surface names a field, an option and a step.

    Attributes:
        fields: A field's name on this surface (``"url"`` -> ``"URL"``); a field not named keeps its own.
        option: How to set an option to a value here (``("allow_any_port", "True")`` -> ``"pass
            allow_any_port=True"``), or ``None`` when this surface has no way to.
        actions: A remedy action's words, a template that may use ``{option}``, ``{value}``,
            ``{seconds}`` and ``{choices}``; an action not named is said by its word.
        lists: The words for a list a ``choose-from`` remedy names (``"services"``).
    """

    fields: Mapping[str, str]
    option: Callable[[str, str], str | None]
    actions: Mapping[str, str]
    lists: Mapping[str, str] = field(default_factory=dict)

    def field_words(self, name: str) -> str:
        """How this surface names a field."""
        return self.fields.get(name, name)

    def remedy_words(self, remedy: Remedy) -> str:
        """A remedy in this surface's words; ``""`` when this surface cannot say it."""
        if remedy.action == "set-option":
            return self._set_option(remedy.option, remedy.value or "True")
        template = self.actions.get(remedy.action, remedy.action.replace("-", " "))
        seconds = f"{remedy.seconds:.0f}" if remedy.seconds is not None else ""
        words = template.format(
            option=remedy.option,
            value=remedy.value,
            seconds=seconds,
            choices=self.lists.get(remedy.value, remedy.value),
        )
        if remedy.action == "choose-from" and remedy.option:
            other = self._set_option(remedy.option, "True")
            if other:
                words += f", or {other}"
        return words

    def _set_option(self, option: str, value: str) -> str:
        words = self.option(option, value)
        if not words:
            return ""
        purpose = _OPTION_PURPOSE.get(option)
        return f"{words} {purpose}" if purpose else words


def _python_option(option: str, value: str) -> str:
    return f"pass {option}={value}"


#: Python's words: parameter names, ``ts.client.auth.reset()``, ``tskit.SERVICE_CATALOGUE``.
PYTHON_WORDS: Final = Vocabulary(
    fields={},
    option=_python_option,
    actions={
        "set-variable": "set it or the {option} variable",
        "choose-from": "one of {choices}",
        "reset-login": "fix the credentials, then reconnect or call ts.client.auth.reset()",
        "unlock-user": "have Verizon support unlock the user, then lift the refusal: call ts.client.auth.reset(), "
        "or run `tskit reset-login` for one another run recorded",
        "clear-failed-logins": "check the user name and password, then run `tskit reset-login` (a user ThingSpace "
        "already locked needs Verizon support first)",
        "fix-credentials": "check the user name and password, then reconnect",
        "fix-app-credentials": "check the application's client_id and client_secret, then reconnect",
        "listener-credentials": "pass them as username= and password=",
        "wait": "wait {seconds} s",
        "longer-timeout": "allow a longer timeout",
        "plan-again": "plan again",
        "new-journal": "start a new journal (journal=)",
        "run-again": "run again later",
    },
    lists={"services": "tskit.SERVICE_CATALOGUE"},
)


def sentence(text: str, remedy: str) -> str:
    """``text`` followed by a remedy as a sentence of its own (one full stop between them)."""
    if not remedy:
        return text
    return f"{text.rstrip().rstrip('.')}. {remedy[:1].upper()}{remedy[1:]}"
