"""The pre-register check: what an audit would say of one listener before it is registered.

Kept apart from :mod:`tskit.ops`' other modules because it runs the audit's rules, and the audit
itself reads its accounts with :func:`tskit.ops.fanout.read_accounts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tskit._models import Callback
from tskit._secret import Secret
from tskit.audit import DEFAULT_RULES, AuditContext, Finding, Severity, run_rules


@dataclass(frozen=True, slots=True)
class RegisterCheck:
    """The findings of the audit's rules on a listener about to be registered.

    Attributes:
        serious: High findings (e.g. a private address ThingSpace cannot reach): ask before sending.
        warnings: Medium findings (e.g. no credentials): say, but do not ask.
    """

    serious: tuple[Finding, ...]
    warnings: tuple[Finding, ...]


def check_register(
    account: str,
    service: str,
    url: str,
    *,
    username: str = "",
    has_password: bool = False,
    allow_any_port: bool = False,
) -> RegisterCheck:
    """Run the default audit rules over the listener a register would leave, before it is sent.

    Args:
        account: The account.
        service: The service.
        url: The listener URL as given.
        username: The listener's username, if any.
        has_password: Whether a password is given (the password itself is not needed).
        allow_any_port: The caller chose to allow any port: ``port-not-allowed`` is not reported.
    """
    callback = Callback(account, service, url, username, Secret("set" if has_password else ""))
    findings = [
        f
        for f in run_rules(account, [callback], DEFAULT_RULES, AuditContext())
        if not (allow_any_port and f.rule == "port-not-allowed")
    ]
    return RegisterCheck(
        serious=tuple(f for f in findings if f.severity >= Severity.HIGH),
        warnings=tuple(f for f in findings if f.severity == Severity.MEDIUM),
    )
