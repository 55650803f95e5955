"""The sentences of login safety, keyed by verdict: what a failed or unsent login means, and what to do.

Also how they are put on an error: a reason and remedy (:func:`mark`), a note (:func:`copy`).
"""

from __future__ import annotations

from typing import Any

from tskit._errors import ApiError, Reason, Remedy, ThingSpaceError
from tskit.auth.guard import MAX_FAILED_LOGINS
from tskit.auth.protocol import Verdict


def _where_the_count_stands(failures: int) -> str:
    return f" It is failed login {failures} of the {MAX_FAILED_LOGINS} in a row that tskit allows for this user"


def answered(
    found: Verdict, what: str, *, status: int, code: str, token_request: bool, recorded: bool, failures: int | None
) -> str:
    """What a failed token request or login that ThingSpace answered means for the user, and what to do.

    ``failures`` is the user's failed logins in a row counting this one, when they are on record.
    """
    if found is Verdict.UNCERTAIN:
        count = (
            f"{_where_the_count_stands(failures)}; after {MAX_FAILED_LOGINS}, no run sends another until "
            "`tskit reset-login`."
            if failures is not None
            else ""
        )
        return (
            f"The {what} failed with an answer tskit does not know. Verizon does not document its "
            "answer to a wrong password, so this may be one, and 5 failed logins in a row lock the user."
            f"{count} Not tried again at once."
        )
    if found is Verdict.THROTTLED:
        return f"ThingSpace throttled the {what}; tried again after the wait if the call's timeout allows"
    if found is Verdict.PASSING:
        return f"The {what} failed for a passing reason; not tried again at once"
    later = (
        " The refusal is recorded: later runs do not try these credentials again (corrected ones are tried) "
        "until `tskit reset-login`."
        if recorded
        else ""
    )
    if token_request:
        return (
            f"ThingSpace refused the {what}: the application key or secret is wrong; "
            f"tskit does not try again by itself.{later}"
        )
    if found is Verdict.LOCKED:
        return (
            "The user is locked: ThingSpace refuses its logins until Verizon support unlocks it; tskit does not "
            "try again by itself" + (" (the refusal is recorded: later runs do not try again)" if recorded else "")
        )
    count = f"{_where_the_count_stands(failures)}." if failures is not None else ""
    return (
        f"ThingSpace refused the {what}; tskit does not try again by itself (5 failed logins lock the user)."
        f"{count}{later}"
    )


def not_answered(*, counted: int | None, worked_before: bool) -> str:
    """What a token request or login that got no answer means for the user's count of failed logins."""
    note = "the login got no answer; not tried again at once"
    if counted is not None and worked_before:
        note += ". These credentials logged in before, so it is not counted as a failed login"
    elif counted is not None:
        note += (
            f". tskit cannot tell whether ThingSpace judged it, so it counts as failed login {counted} of "
            f"the {MAX_FAILED_LOGINS} in a row that tskit allows for this user (a login that works starts the "
            "count again)"
        )
    return note


def refused_here(*, token_request: bool, status: int, code: str) -> str:
    """A call not sent: this process's earlier login with these credentials was refused."""
    return (
        f"Not sent: an earlier {'token request' if token_request else 'login'} with these "
        f"credentials was refused (ThingSpace answered {status}"
        f"{': ' + code if code else ''}) and is not retried."
    )


def refused_elsewhere(entry: dict[str, Any], *, status: int, code: str, token_request: bool, locked: bool) -> str:
    """A call not sent: a login with these credentials was refused by another process or an earlier run."""
    what = "the OAuth token request (application key and secret)" if token_request else "a login with these credentials"
    return (
        f"Not sent: {what} was refused at {entry.get('at')} by another process or run "
        f"(ThingSpace answered {status}{': ' + code if code else ''}"
        f"{'; the user is locked' if locked and not token_request else ''}). tskit does not try the "
        "same credentials again from any run"
    )


def too_many(entry: dict[str, Any], username: str) -> str:
    """A call not sent: the user's failed logins in a row reached the limit."""
    code = str(entry.get("error_code") or "")
    status = entry.get("status_code")
    answer = f"ThingSpace answered {status}{': ' + code if code else ''}" if status else "it got no usable answer"
    return (
        f"Not sent: {entry.get('count', MAX_FAILED_LOGINS)} logins of user {username!r} in a row "
        f"failed or got no usable answer (the last at {entry.get('at')}: {answer}). ThingSpace locks a user "
        "after 5 failed logins, so tskit sends no more for this user from any run (ThingSpace may already "
        "have locked it, through other tools too)"
    )


def throttled_elsewhere(username: str, wait: float) -> str:
    """A login not sent yet: another process recorded a throttle of this user."""
    return (
        f"Not sent: ThingSpace throttled a login of user {username!r} from another process or run "
        f"and asked to wait; tskit logs in again in {wait:.0f} s"
    )


def cooling_down(username: str, left: float) -> str:
    """A call not sent: a login has just failed, and the cooldown is not over."""
    return (
        f"Not sent: a login as {username!r} has just failed; tskit tries again in "
        f"{left:.1f} s (cooldown), not once per waiting call"
    )


def waited(timeout: float, what: str, username: str) -> str:
    """A call that gave up waiting for ``what``."""
    return f"waited {timeout:g} s for {what} of user {username!r}; gave up"


def uncountable(username: str, problem: str) -> tuple[str, str]:
    """A login not sent because its count cannot be kept: the problem, and what is allowed."""
    return (
        f"tskit cannot count the logins of user {username!r} in its record of failed logins "
        f"({problem}), so it sends none: ThingSpace locks a user after 5 failed logins",
        "a config folder this user can write; run `tskit reset-login` to set a damaged record aside",
    )


def unlocked(problem: object) -> tuple[str, str]:
    """No login lock can be had: the problem, and what is allowed."""
    return (
        f"cannot hold the login lock ({problem})",
        "a folder this user can write; tskit does not log in without the lock (5 failed logins lock the user)",
    )


def too_large() -> str:
    """A token or login answer larger than the cap."""
    return "the answer is larger than 1 MB: not a ThingSpace login answer"


# An error's meaning, kept by a copy: its sentence is rebuilt, never what it means.
_MEANING = frozenset({"reason", "field", "value_shown", "remedy", "may_have_applied"})


def refusal_remedy(*, token_request: bool, locked: bool) -> Remedy:
    """What to do about credentials refused before (recorded): the application's, or the user's."""
    if token_request:
        return Remedy("fix-app-credentials")
    return Remedy("unlock-user") if locked else Remedy("reset-login")


def mark(error: ThingSpaceError, reason: Reason, remedy: Remedy | None = None) -> ThingSpaceError:
    """Set ``reason`` and ``remedy`` on ``error``; returns it."""
    error.reason = reason
    error.remedy = remedy
    return error


def copy(error: ThingSpaceError, note: str) -> ThingSpaceError:
    """A fresh error like ``error``, with a note: one exception object is never raised twice."""
    if isinstance(error, ApiError):
        fresh: ThingSpaceError = type(error)(
            error.status_code,
            error.error_code,
            error.error_message,
            method=error.method,
            path=error.path,
            retry_after=error.retry_after,
            note=note,
        )
        fresh.__dict__.update({k: v for k, v in error.__dict__.items() if k in _MEANING})
        return fresh
    fresh = type(error).__new__(type(error))
    fresh.args = error.args
    fresh.__dict__.update({k: v for k, v in error.__dict__.items() if k != "__notes__"})
    fresh.add_note(note)
    return fresh
