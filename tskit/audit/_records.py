"""What an audit keeps of one registration (no password), and the rules run again over saved records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tskit._errors import mask_url
from tskit._models import Callback
from tskit._secret import MASK, Secret
from tskit.audit._rules import DEFAULT_RULES, AuditContext, Finding, run_rules


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One registration as an audit keeps it: no password, only whether one is set and its fingerprint."""

    account_name: str
    service_name: str
    url: str
    username: str
    password_fingerprint: str

    def __post_init__(self) -> None:
        # Records are made of masked callbacks; one read from a snapshot file is masked here too.
        if isinstance(self.url, str):
            object.__setattr__(self, "url", mask_url(self.url))

    def as_callback(self) -> Callback:
        """A callback for the rules: the password stands in as a mask when one was set."""
        return Callback(
            self.account_name,
            self.service_name,
            self.url,
            self.username,
            Secret(MASK if self.password_fingerprint else ""),
        )


def findings_for(
    records: Sequence[AuditRecord], accounts: Sequence[str], expect: Sequence[str], skip: set[str]
) -> list[Finding]:
    """Run the default rules again over saved records (for snapshots that keep no findings)."""
    context = AuditContext(expect=tuple(expect))
    by_account: dict[str, list[Callback]] = {name: [] for name in accounts}
    for record in records:
        by_account.setdefault(record.account_name, []).append(record.as_callback())
    return [
        f
        for name, callbacks in by_account.items()
        if name not in skip
        for f in run_rules(name, callbacks, DEFAULT_RULES, context)
    ]
