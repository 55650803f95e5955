"""Making a server's text, a URL or an answer's body safe to show: no secret, no control character, short.

No message, repr or attribute of tskit's errors holds a secret: texts that come from a server are
cut to a readable length, stripped of control characters and scrubbed of every secret the client
knows (see :func:`scrub`); URLs are shown through :func:`mask_url`.
"""

from __future__ import annotations

import functools
import html
import json
import re
import unicodedata
from collections.abc import Iterable
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
