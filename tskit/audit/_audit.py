"""The :class:`Audit` that holds what an audit of many accounts found, and :func:`run_audit` that makes one."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tskit import _validate as check
from tskit._errors import ValidationError
from tskit._fingerprint import fingerprint, key_id, load_key
from tskit._frames import SEVERITY_LEVELS, callbacks_columns, category, columns_frame, numbers, ordered, text
from tskit._models import Callback
from tskit._secret import MASK
from tskit.audit._diff import diff as diff_audits
from tskit.audit._display import html_overview, html_summary, text_summary
from tskit.audit._records import AuditRecord
from tskit.audit._rules import DEFAULT_RULES, AuditContext, Finding, Rule, Severity, run_rules
from tskit.audit._snapshot import document
from tskit.audit._snapshot import load as load_snapshot
from tskit.audit._snapshot import save as save_snapshot
from tskit.ops.accounts import account_list, check_concurrency
from tskit.ops.fanout import AccountError, read_accounts

if TYPE_CHECKING:
    import pandas as pd

    from tskit._client import ThingSpaceClient


class Audit:
    """The registrations, findings and unreadable accounts of an audit of many accounts.

    Made by ``ts.audit(...)`` or :meth:`load`. In a notebook it shows as a summary with counts
    by severity, the findings highlighted and a chart.

    Attributes:
        accounts: The accounts audited, in order.
        expect: The services every account was expected to have.
        source: Where the data came from (a ThingSpace URL, or the embedded simulator).
        started_at: When the audit started (UTC).
        finished_at: When it ended (UTC).
        key_id: Public name of the key of the password fingerprints.
        records: The registrations found, without passwords.
        finding_list: The findings.
        error_list: The accounts that could not be read.
    """

    def __init__(
        self,
        *,
        accounts: Sequence[str],
        expect: Sequence[str],
        source: str,
        started_at: datetime,
        finished_at: datetime,
        key_id: str,
        records: Sequence[AuditRecord],
        findings: Sequence[Finding],
        errors: Sequence[AccountError],
    ) -> None:
        self.accounts = list(accounts)
        self.expect = list(expect)
        self.source = source
        self.started_at = started_at
        self.finished_at = finished_at
        self.key_id = key_id
        self.records = list(records)
        self.finding_list = sorted(findings, key=lambda f: (-f.severity, f.account_name, f.service_name, f.rule))
        self.error_list = list(errors)

    # -- frames ---------------------------------------------------------------------------

    @property
    def callbacks(self) -> pd.DataFrame:
        """Every account's registrations: the columns of ``list_callbacks``, password masked."""
        records = self.records
        return callbacks_columns(
            [r.account_name for r in records],
            [r.service_name for r in records],
            [r.url for r in records],
            [r.username for r in records],
            [MASK if r.password_fingerprint else "" for r in records],
        )

    @property
    def findings(self) -> pd.DataFrame:
        """One row per finding, most severe first: account_name, service_name, rule, severity, detail.

        ``severity`` is an ordered categorical (info < low < medium < high), so sorting and
        comparing (``findings[findings.severity >= "medium"]``) follow severity, not the alphabet.
        """
        found = self.finding_list
        return columns_frame(
            {
                "account_name": category([f.account_name for f in found]),
                "service_name": category([f.service_name for f in found]),
                "rule": category([f.rule for f in found]),
                "severity": ordered([str(f.severity) for f in found], SEVERITY_LEVELS),
                "detail": text([f.detail for f in found]),
            }
        )

    @property
    def errors(self) -> pd.DataFrame:
        """One row per account that could not be read, with the reason."""
        errors = self.error_list
        return columns_frame(
            {
                "account_name": category([e.account_name for e in errors]),
                "error": category([e.error for e in errors]),
                "status_code": numbers([e.status_code for e in errors]),
                "error_code": text([e.error_code for e in errors]),
                "message": text([e.message for e in errors]),
            }
        )

    # -- summaries ------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """How many findings of each severity, most severe first."""
        return {str(s): sum(1 for f in self.finding_list if f.severity == s) for s in sorted(Severity, reverse=True)}

    def at_or_above(self, severity: Severity | str) -> list[Finding]:
        """The findings at or above a severity."""
        level = Severity.parse(severity)
        return [f for f in self.finding_list if f.severity >= level]

    @property
    def complete(self) -> bool:
        """Whether every account could be read."""
        return not self.error_list

    def __repr__(self) -> str:
        return text_summary(self)

    def _repr_html_(self) -> str:
        return html_summary(self)

    def text(self, *, limit: int | None = 20, colour: bool = False, command: bool = False) -> str:
        """The summary as text: counts, then at most ``limit`` findings (``None``: all).

        Args:
            limit: Most findings listed.
            colour: Colour the severities with ANSI codes (a terminal).
            command: Word the hints for the ``tskit`` command rather than Python.
        """
        return text_summary(self, limit=limit, colour=colour, command=command)

    def overview_html(self, apart: Collection[Finding] = (), apart_label: str = "") -> str:
        """The HTML overview (counts, chart, findings); ``apart`` findings are counted under ``apart_label``."""
        return html_overview(self, apart, apart_label)

    def to_dict(self) -> dict[str, Any]:
        """The JSON snapshot of the audit, as a dict (what :meth:`save` writes to a ``.json`` file)."""
        return document(self)

    # -- snapshots and diffs --------------------------------------------------------------

    def save(self, path: str | Path, *, format: str | None = None) -> Path:
        """Write a snapshot: ``.json`` (everything) or ``.csv`` (registrations, with a header).

        Snapshots never hold passwords, only keyed fingerprints of them.
        """
        return save_snapshot(self, Path(path), format)

    @classmethod
    def load(cls, path: str | Path, *, format: str | None = None) -> Audit:
        """Read a snapshot written by :meth:`save`."""
        return cls(**load_snapshot(Path(path), format))

    def diff(self, old: Audit) -> pd.DataFrame:
        """What changed since ``old``: added, removed and changed registrations, one row per change.

        Columns: account_name, service_name, change (``added``, ``removed``, ``changed``,
        ``not-compared``), field (``url``, ``username``, ``password``), old, new.
        """
        return diff_audits(old, self)


async def run_audit(
    client: ThingSpaceClient,
    accounts: Iterable[str] | str,
    *,
    expect: Iterable[str] = (),
    rules: Iterable[Rule] | None = None,
    concurrency: int = 16,
    progress: bool | None = None,
    source: str,
    fingerprint_key: bytes | str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    allow_unknown_service: bool = False,
) -> Audit:
    """Read every account's callbacks with bounded concurrency and run the rules over them.

    ``on_progress(done, total)`` is called after each account, e.g. to drive a widget. An expected
    service outside the catalogue is refused before anything is sent, unless ``allow_unknown_service``.
    """
    names = account_list(accounts)
    expected = tuple(check.service_name(s, allow_unknown=allow_unknown_service) for s in expect)
    check_concurrency(concurrency)
    rule_list = list(DEFAULT_RULES if rules is None else rules)
    for rule in rule_list:
        if not isinstance(rule, Rule):
            raise ValidationError("rules", f"{rule!r} is not a rule", "objects with name, severity, description, check")
    key = load_key(fingerprint_key)
    context = AuditContext(expect=expected)
    checked: dict[str, tuple[list[AuditRecord], list[Finding]]] = {}

    def check_account(name: str, callbacks: list[Callback]) -> None:
        records = [
            AuditRecord(
                c.account_name,
                c.service_name,
                c.url,
                c.username,
                fingerprint(key, c.account_name, c.service_name, c.password.reveal()),
            )
            for c in callbacks
        ]
        checked[name] = records, run_rules(name, callbacks, rule_list, context)

    started = datetime.now(UTC)
    _, failed = await read_accounts(
        client,
        names,
        concurrency=concurrency,
        progress=progress,
        description="Auditing",
        on_progress=on_progress,
        on_read=check_account,
        expect=expected,  # a missing expected service is a finding: confirmed first
    )
    # In the order of ``names``, whatever order the reads finished in.
    records = [record for name in names if name in checked for record in checked[name][0]]
    findings = [finding for name in names if name in checked for finding in checked[name][1]]
    errors = [AccountError.from_exception(name, failed[name]) for name in names if name in failed]
    return Audit(
        accounts=names,
        expect=expected,
        source=source,
        started_at=started,
        finished_at=datetime.now(UTC),
        key_id=key_id(key),
        records=records,
        findings=findings,
        errors=errors,
    )
