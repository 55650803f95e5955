"""Credentials, the ThingSpace base URL, and the API paths built on it."""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from tskit._addresses import is_loopback_host
from tskit._errors import ConfigurationError, Reason, Remedy, ValidationError, mask_url
from tskit._secret import Secret
from tskit._validate import plain_text

DEFAULT_BASE_URL: Final = "https://thingspace.verizon.com"

#: Environment variables read by :meth:`Credentials.from_env`, by field.
ENV_VARS: Final[Mapping[str, str]] = {
    "client_id": "THINGSPACE_CLIENT_ID",
    "client_secret": "THINGSPACE_CLIENT_SECRET",
    "username": "THINGSPACE_USERNAME",
    "password": "THINGSPACE_PASSWORD",
}
BASE_URL_ENV: Final = "THINGSPACE_BASE_URL"

TOKEN_PATH: Final = "/api/ts/v1/oauth2/token"
LOGIN_PATH: Final = "/api/m2m/v1/session/login"
LOGOUT_PATH: Final = "/api/m2m/v1/session/logout"
CALLBACKS_PATH: Final = "/api/m2m/v1/callbacks/{account}"
CALLBACK_PATH: Final = "/api/m2m/v1/callbacks/{account}/name/{service}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What ThingSpace's two-step login needs.

    Attributes:
        client_id: The OAuth2 application key from ThingSpace's Key Management page.
        client_secret: The application secret (kept as a :class:`~tskit.Secret`).
        username: The Connectivity Management (UWS) user name.
        password: The UWS password (kept as a :class:`~tskit.Secret`).
    """

    client_id: str
    client_secret: Secret
    username: str
    password: Secret

    def __init__(self, client_id: str, client_secret: Secret | str, username: str, password: Secret | str) -> None:
        values = {"client_id": client_id, "client_secret": client_secret, "username": username, "password": password}
        for name, value in values.items():
            text = value.reveal() if isinstance(value, Secret) else value
            if not isinstance(text, str) or not text.strip():
                raise ConfigurationError(
                    name, "is missing or empty", remedy=Remedy("set-variable", option=ENV_VARS[name])
                )
            try:  # e.g. bytes that were not UTF-8, which no request could carry
                plain_text(name, text)
            except ValidationError as exc:
                raise ConfigurationError(
                    name, exc.problem, "printable characters only", reason=Reason.INVALID_VALUE
                ) from None
        object.__setattr__(self, "client_id", client_id.strip())
        object.__setattr__(self, "client_secret", Secret(client_secret))
        object.__setattr__(self, "username", username.strip())
        object.__setattr__(self, "password", Secret(password))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials | None:
        """Read the four ``THINGSPACE_*`` variables.

        Returns:
            The credentials, or ``None`` when none of the four is set.

        Raises:
            ConfigurationError: Some are set and others are not.
        """
        env = os.environ if environ is None else environ
        found = {name: env.get(var, "").strip() for name, var in ENV_VARS.items()}
        if not any(found.values()):
            return None
        missing = [ENV_VARS[name] for name, value in found.items() if not value]
        if missing:
            raise ConfigurationError(
                "credentials",
                f"{', '.join(missing)} not set while other THINGSPACE_* variables are",
                "set all four, or none to use the embedded simulator",
            )
        return cls(**found)

    def basic_authorization(self) -> str:
        """The token request's ``Basic`` credentials: base64 of ``client_id:client_secret``."""
        pair = f"{self.client_id}:{self.client_secret.reveal()}".encode("utf-8", "surrogatepass")
        return base64.b64encode(pair).decode()

    def secret_values(self) -> tuple[str, ...]:
        """The secret texts, for scrubbing anything a server sends back (the ``Basic`` form too)."""
        return (self.client_secret.reveal(), self.password.reveal(), self.basic_authorization())


def base_url(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Check and normalise the ThingSpace host root (``THINGSPACE_BASE_URL``).

    Credentials are only ever sent over https, except to a loopback address (a local simulator).
    """
    env = os.environ if environ is None else environ
    text = (value or env.get(BASE_URL_ENV, "") or DEFAULT_BASE_URL).strip().rstrip("/")
    # A host root has no query or fragment: whatever one carries (a token, say) is never shown.
    root, cut = text.split("#", 1)[0].split("?", 1)[0], "?" in text or "#" in text
    bad = functools.partial(ConfigurationError, reason=Reason.INVALID_VALUE, value_shown=mask_url(root) + "…" * cut)
    shown = repr(mask_url(root) + "…" * cut)  # a password in it is never shown
    try:
        text.encode("utf-8")  # bytes that were not UTF-8 come from os.environ as lone surrogates
    except UnicodeEncodeError:
        raise bad("base_url", f"{shown} is not valid UTF-8 text", "e.g. https://thingspace.verizon.com") from None
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
    except ValueError:
        raise bad("base_url", f"{shown} cannot be parsed", "e.g. https://thingspace.verizon.com") from None
    if parts.scheme not in ("http", "https") or not host:
        raise bad("base_url", f"{shown} is not an http(s) URL", "e.g. https://thingspace.verizon.com")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise bad("base_url", f"{shown} would send credentials in clear text", "use https, or http only on 127.0.0.1")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise bad("base_url", "must not carry credentials, a query or a fragment", "the host root only")
    if parts.path.rstrip("/").endswith("/api"):
        raise bad(
            "base_url", f"{shown} ends in /api", "give the host root; tskit adds /api/ts/v1 and /api/m2m/v1 itself"
        )
    return text
