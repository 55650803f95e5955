"""The fixed texts of ThingSpace's error answers that tskit knows, kept word for word when scrubbed.

A server's text is scrubbed of every secret tskit knows (see :func:`tskit._errors.scrub`), so a
password that happens to be a common word (``wrong``) would be masked inside the server's own
sentence: "unknown user name or *** password". A text that is one of these, word for word, holds
nothing that came from the request, whatever the secrets are: it is kept as it is. ``{}`` marks
where a value is filled in; only that value is scrubbed. The simulator answers with these same
texts from its own copy (it never imports the client); a test checks that the two agree.
"""

from __future__ import annotations

from typing import Final

# Connectivity Management answers (``errorMessage``).
LOGIN_FAILED: Final = "Log in failed: unknown user name or wrong password."
USER_LOCKED: Final = "The user is locked after too many failed log in attempts. Contact Verizon Support."
LOGIN_INCOMPLETE: Final = "username and password are required."
SESSION_MISSING: Final = "The VZ-M2M-Token header is missing."
SESSION_INVALID: Final = "The session token is not valid."
SESSION_EXPIRED: Final = "The session token has expired."
ACCOUNT_NOT_FOUND: Final = "Account {} was not found."
ACCOUNT_NOT_YOURS: Final = "The authenticated user is not associated with the account."
TOO_MANY_REQUESTS: Final = "Too many requests. Try again later."
UNEXPECTED: Final = "An unexpected error occurred."
# OAuth token endpoint answers (``error_description``).
CLIENT_AUTH_FAILED: Final = "Client authentication failed."
TOKEN_NOT_VALID: Final = "The token parameter is not a valid token."

#: Every text above: a server's text equal to one of them (its ``{}`` filled in) keeps its words.
FIXED_TEXTS: Final = (
    LOGIN_FAILED,
    USER_LOCKED,
    LOGIN_INCOMPLETE,
    SESSION_MISSING,
    SESSION_INVALID,
    SESSION_EXPIRED,
    ACCOUNT_NOT_FOUND,
    ACCOUNT_NOT_YOURS,
    TOO_MANY_REQUESTS,
    UNEXPECTED,
    CLIENT_AUTH_FAILED,
    TOKEN_NOT_VALID,
)


def filled_in(text: str) -> tuple[str, str | None] | None:
    """The fixed text ``text`` is, and the value filled into its ``{}`` (``None`` when it has none).

    ``None`` when ``text`` is none of :data:`FIXED_TEXTS`. Plain string comparison: no pattern is
    run over the server's text.
    """
    for fixed in FIXED_TEXTS:
        if "{}" not in fixed:
            if text == fixed:
                return fixed, None
            continue
        before, after = fixed.split("{}", 1)
        if len(text) > len(before) + len(after) and text.startswith(before) and text.endswith(after):
            return fixed, text[len(before) : len(text) - len(after)]
    return None
