"""Audit rules: each a small unit that looks at one account's callbacks and says what is wrong.

A rule has a ``name``, a ``severity``, a one-line ``description`` and a ``check`` method. Most
rules judge one callback at a time; :func:`callback_rule` turns such a function into a rule::

    @callback_rule("no-path", Severity.LOW, "The listener URL has no path.")
    def no_path(callback):
        if urlsplit(callback.url).path in ("", "/"):
            return "the URL has no path; most listeners serve one per service"
        return None

    ts.audit(accounts, rules=[*DEFAULT_RULES, no_path])
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from tskit._addresses import is_documentation_address, is_documentation_name
from tskit._errors import mask_url, query_credentials
from tskit._models import ALLOWED_LISTENER_PORTS, ALLOWED_LISTENER_PORTS_TEXT, SERVICE_CATALOGUE, Callback


class Severity(enum.IntEnum):
    """How much a finding matters, in increasing order."""

    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """Read a severity from its name, e.g. ``"high"``."""
        if isinstance(value, Severity):
            return value
        try:
            return cls[value.strip().upper()]
        except KeyError:
            allowed = ", ".join(str(s) for s in cls)
            raise ValueError(f"unknown severity {value!r}: use one of {allowed}") from None


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found by a rule.

    Attributes:
        account_name: The account it concerns.
        service_name: The service it concerns (``""`` for the account as a whole).
        rule: The rule's name.
        severity: How much it matters.
        detail: What is wrong and why it matters, in plain words.
    """

    account_name: str
    service_name: str
    rule: str
    severity: Severity
    detail: str

    def __post_init__(self) -> None:
        # A rule (a user's too) may quote a URL: never with the secret it holds.
        if isinstance(self.detail, str):
            object.__setattr__(self, "detail", mask_url(self.detail))


@dataclass(frozen=True, slots=True)
class AuditContext:
    """What rules may know beyond one account's callbacks.

    Attributes:
        expect: Services every account should have registered.
    """

    expect: tuple[str, ...] = ()


@runtime_checkable
class Rule(Protocol):
    """What an audit rule provides: a name, a severity, a description and a check."""

    @property
    def name(self) -> str:
        """Short kebab-case name, e.g. ``"not-https"``."""
        ...

    @property
    def severity(self) -> Severity:
        """How much its findings matter."""
        ...

    @property
    def description(self) -> str:
        """One line on what it looks for."""
        ...

    def check(self, account_name: str, callbacks: Sequence[Callback], context: AuditContext) -> Iterable[Finding]:
        """The findings for one account."""
        ...


@dataclass(frozen=True)
class CallbackRule:
    """A rule made of a function that judges one callback (see :func:`callback_rule`)."""

    name: str
    severity: Severity
    description: str
    judge: Callable[[Callback], str | None] = field(repr=False)

    def check(self, account_name: str, callbacks: Sequence[Callback], context: AuditContext) -> Iterable[Finding]:
        """One finding for each callback the function has something to say about."""
        for callback in callbacks:
            detail = self.judge(callback)
            if detail:
                yield Finding(account_name, callback.service_name, self.name, self.severity, detail)


def callback_rule(
    name: str, severity: Severity | str, description: str
) -> Callable[[Callable[[Callback], str | None]], CallbackRule]:
    """Make a rule from a function that returns a detail text for a bad callback, or ``None``."""
    level = Severity.parse(severity)

    def make(judge: Callable[[Callback], str | None]) -> CallbackRule:
        return CallbackRule(name, level, description, judge)

    return make


def _parts(callback: Callback) -> tuple[str, str, int | None]:
    """Scheme, host and effective port of a callback's URL; the port is None when unparsable."""
    return _url_parts(callback.url)


@functools.lru_cache(maxsize=1024)  # several rules ask about each URL in turn: a small cache is enough
def _url_parts(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return "", "", None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


@callback_rule("not-https", Severity.MEDIUM, "The listener URL does not use HTTPS.")
def not_https(callback: Callback) -> str | None:
    """Messages (device ids, results) travel unencrypted to a plain-HTTP listener."""
    scheme, _, _ = _parts(callback)
    if scheme != "https":
        return f"{callback.url} is not HTTPS: ThingSpace's messages would travel unencrypted"
    return None


@callback_rule("credentials-over-http", Severity.HIGH, "Username and password are sent to a plain-HTTP URL.")
def credentials_over_http(callback: Callback) -> str | None:
    """ThingSpace puts the listener's username and password in every message body."""
    scheme, _, _ = _parts(callback)
    if scheme != "https" and (callback.username or callback.password):
        return "the listener's username and password travel in clear text inside every message"
    return None


@callback_rule(
    "credentials-in-url-query", Severity.HIGH, "The listener URL carries a credential in its query (e.g. ?token=)."
)
def credentials_in_url_query(callback: Callback) -> str | None:
    """A secret in a URL is shown to everyone who lists the account and kept in every access log on the way."""
    found = query_credentials(callback.url)  # the value is masked already; its name still tells
    if found:
        return (
            f"the URL's query carries a credential ({', '.join(repr(w) for w in found)}): everyone who can list the "
            "account's callbacks reads it, and ThingSpace, proxies and the listener's access logs keep it; "
            "register the URL without it and let the listener check the username and password in each message"
        )
    return None


_PRIVATE_SUFFIXES = (
    ".localhost",
    ".local",
    ".internal",
    ".intranet",
    ".lan",
    ".home.arpa",
    ".corp",
    ".test",
    ".example",
    ".invalid",
    ".localdomain",
)


@functools.lru_cache(maxsize=1024)
def _unreachable_reason(host: str) -> str | None:
    if not host:
        return "it has no host"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if host == "localhost" or host.endswith(_PRIVATE_SUFFIXES):
            return f"{host} is a local or reserved name"
        if is_documentation_name(host):  # the simulator refuses to deliver to these too
            return f"{host} is a name reserved for documentation (RFC 2606)"
        if "." not in host:
            return f"{host} is a single-label name that only resolves inside a private network"
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    kinds = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (is_documentation_address(address), "a documentation address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((f"{host} is {what}" for test, what in kinds if test), None)


@callback_rule("unreachable-host", Severity.HIGH, "Verizon's data centers cannot reach the listener's host.")
def unreachable_host(callback: Callback) -> str | None:
    """ThingSpace delivers from the public internet; private and reserved hosts never get a message."""
    _, host, _ = _parts(callback)
    reason = _unreachable_reason(host)
    if reason:
        return f"{reason}: ThingSpace delivers from the internet and cannot reach it"
    return None


@callback_rule("port-not-allowed", Severity.HIGH, "The listener port is not one ThingSpace delivers to.")
def port_not_allowed(callback: Callback) -> str | None:
    """ThingSpace only delivers to a fixed list of ports."""
    _, _, port = _parts(callback)
    if port is None:
        return f"{callback.url} cannot be parsed"
    if port not in ALLOWED_LISTENER_PORTS:
        return f"port {port} is not one ThingSpace delivers to ({ALLOWED_LISTENER_PORTS_TEXT})"
    return None


@callback_rule("no-credentials", Severity.MEDIUM, "The listener has no username and password.")
def no_credentials(callback: Callback) -> str | None:
    """Without them, the listener cannot tell ThingSpace's messages from anyone else's."""
    if not callback.username and not callback.password:
        return "no username or password is registered, so the listener cannot check who sent a message"
    return None


@callback_rule("unknown-service", Severity.LOW, "The service name is not in tskit's catalogue.")
def unknown_service(callback: Callback) -> str | None:
    """A name tskit does not know: a new service, or a typo made through another tool."""
    if callback.service_name not in SERVICE_CATALOGUE:
        return f"{callback.service_name!r} is not a callback service tskit knows"
    return None


@dataclass(frozen=True)
class SharedUrl:
    """One URL registered for several services of an account (Verizon advises one per service)."""

    name: str = "shared-url"
    severity: Severity = Severity.LOW
    description: str = "Several services of an account share one listener URL."

    def check(self, account_name: str, callbacks: Sequence[Callback], context: AuditContext) -> Iterable[Finding]:
        """One finding per service sharing a URL with another service."""
        by_url: defaultdict[str, list[str]] = defaultdict(list)
        for callback in callbacks:
            by_url[callback.url].append(callback.service_name)
        for callback in callbacks:
            others = [s for s in by_url[callback.url] if s != callback.service_name]
            if others:
                yield Finding(
                    account_name,
                    callback.service_name,
                    self.name,
                    self.severity,
                    f"the URL is also registered for {', '.join(others)}; Verizon advises one URL per service",
                )


@dataclass(frozen=True)
class MissingService:
    """A service the audit expects is not registered."""

    name: str = "missing-service"
    severity: Severity = Severity.HIGH
    description: str = "A service the audit expects has no listener."

    def check(self, account_name: str, callbacks: Sequence[Callback], context: AuditContext) -> Iterable[Finding]:
        """One finding per expected service with no registration."""
        registered = {c.service_name for c in callbacks}
        for service in context.expect:
            if service not in registered:
                yield Finding(
                    account_name,
                    service,
                    self.name,
                    self.severity,
                    f"no {service} listener is registered; its messages are not delivered anywhere",
                )


#: The rules an audit runs unless told otherwise.
DEFAULT_RULES: tuple[Rule, ...] = (
    credentials_over_http,
    credentials_in_url_query,
    unreachable_host,
    port_not_allowed,
    MissingService(),
    not_https,
    no_credentials,
    SharedUrl(),
    unknown_service,
)


def run_rules(
    account_name: str, callbacks: Sequence[Callback], rules: Iterable[Rule], context: AuditContext
) -> list[Finding]:
    """Every finding of every rule for one account.

    Raises:
        Exception: What a rule raised, with a note naming the rule and the account.
    """
    findings: list[Finding] = []
    for rule in rules:
        try:
            findings.extend(rule.check(account_name, callbacks, context))
        except Exception as exc:  # a user's rule with a bug: say which, and where
            exc.add_note(f"raised by the audit rule {getattr(rule, 'name', rule)!r} on account {account_name}")
            raise
    return findings
