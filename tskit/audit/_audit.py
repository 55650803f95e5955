"""Reading many accounts at once, and the :class:`Audit` that holds what was found."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tskit import _validate as check
from tskit._errors import ApiError, ThingSpaceError, UncertainListingError, ValidationError, mask_url, scrub
from tskit._fingerprint import fingerprint, key_id, load_key
from tskit._models import Callback, Listing
from tskit._secret import MASK
from tskit.audit._progress import progress_bar
from tskit.audit._rules import DEFAULT_RULES, AuditContext, Finding, Rule, Severity, run_rules

if TYPE_CHECKING:
    import pandas as pd

    from tskit._client import ThingSpaceClient

log = logging.getLogger(__name__)

FINDING_COLUMNS = ("account_name", "service_name", "rule", "severity", "detail")
ERROR_COLUMNS = ("account_name", "error", "status_code", "error_code", "message")


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
        from tskit._secret import Secret

        return Callback(
            self.account_name,
            self.service_name,
            self.url,
            self.username,
            Secret(MASK if self.password_fingerprint else ""),
        )


@dataclass(frozen=True, slots=True)
class AccountError:
    """An account that could not be read, and why."""

    account_name: str
    error: str
    status_code: int | None
    error_code: str
    message: str

    @classmethod
    def from_exception(cls, account_name: str, exc: ThingSpaceError) -> AccountError:
        """Describe a failed read."""
        # The client scrubbed these texts already; scrubbing again keeps a password that slipped
        # through (e.g. one no client knew) out of audit.errors, reprs and snapshots.
        if isinstance(exc, ApiError):
            # tskit's own errors about an answer (a login not sent, say) have no server message:
            # their whole text says what happened and what to do.
            code, message = scrub(exc.error_code), scrub(exc.error_message or str(exc))
            return cls(account_name, type(exc).__name__, exc.status_code, code, message)
        if isinstance(exc, UncertainListingError):  # read, but not for certain: its reason is the code
            return cls(account_name, type(exc).__name__, None, exc.reason, scrub(exc.detail))
        return cls(account_name, type(exc).__name__, None, "", scrub(str(exc)))


def account_list(accounts: Iterable[str] | str) -> list[str]:
    """Check and de-duplicate account names (order kept); all bad names are named at once."""
    if isinstance(accounts, str):
        accounts = [accounts]
    names: dict[str, None] = {}  # a dict keeps the order and finds a repeat at once, even among 10,000
    bad: list[str] = []
    for entry in accounts:
        try:
            name = check.account_name(entry)
        except ValidationError:
            bad.append(repr(entry))
            continue
        names.setdefault(name)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValidationError(
            "accounts",
            f"{len(bad)} not account names: {shown}",
            "letters, digits, '-', '_' or '.', e.g. 0000123456-00001",
        )
    if not names:
        raise ValidationError("accounts", "no account names given", "one or more, e.g. 0000123456-00001")
    return list(names)


def read_accounts_file(path: str | Path) -> list[str]:
    """Account names from a UTF-8 text file: one per line; blank lines, ``#`` comments and a BOM are skipped.

    Raises:
        UnicodeDecodeError: The file is not UTF-8.
    """
    return account_lines(Path(path).read_text(encoding="utf-8-sig"))


def account_lines(text: str) -> list[str]:
    """Account names from text: one per line; blank lines and ``#`` comments are skipped."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


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
        from tskit._frames import callbacks_columns

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
        from tskit._frames import SEVERITY_LEVELS, category, columns_frame, ordered, text

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
        from tskit._frames import category, columns_frame, numbers, text

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
        from tskit.audit._display import text_summary

        return text_summary(self)

    def _repr_html_(self) -> str:
        from tskit.audit._display import html_summary

        return html_summary(self)

    # -- snapshots and diffs --------------------------------------------------------------

    def save(self, path: str | Path, *, format: str | None = None) -> Path:
        """Write a snapshot: ``.json`` (everything) or ``.csv`` (registrations, with a header).

        Snapshots never hold passwords, only keyed fingerprints of them.
        """
        from tskit.audit._snapshot import save

        return save(self, Path(path), format)

    @classmethod
    def load(cls, path: str | Path, *, format: str | None = None) -> Audit:
        """Read a snapshot written by :meth:`save`."""
        from tskit.audit._snapshot import load

        return load(Path(path), format)

    def diff(self, old: Audit) -> pd.DataFrame:
        """What changed since ``old``: added, removed and changed registrations, one row per change.

        Columns: account_name, service_name, change (``added``, ``removed``, ``changed``,
        ``not-compared``), field (``url``, ``username``, ``password``), old, new.
        """
        from tskit.audit._diff import diff

        return diff(old, self)


def check_concurrency(concurrency: int) -> int:
    """Check a fan-out's concurrency: 1 to 256 calls at once."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
        raise ValidationError("concurrency", f"{concurrency!r} is out of range", "a whole number from 1 to 256")
    return concurrency


async def read_accounts(
    client: ThingSpaceClient,
    names: Sequence[str],
    *,
    concurrency: int = 16,
    progress: bool | None = None,
    description: str = "Reading",
    on_progress: Callable[[int, int], None] | None = None,
    on_read: Callable[[str, list[Callback]], None] | None = None,
    expect: Collection[str] | Mapping[str, Collection[str]] = (),
    confirm_all: bool = False,
) -> tuple[dict[str, Listing], dict[str, ThingSpaceError]]:
    """Read the callbacks of many accounts, at most ``concurrency`` at once, with a progress bar.

    Each account is read with :meth:`ThingSpaceClient.listing <tskit.ThingSpaceClient.listing>`
    (``expect``: services whose absence must be confirmed, for every account or per account;
    ``confirm_all``: confirm every answer). An account whose listings are uncertain is returned
    among the failures, as an :class:`~tskit.UncertainListingError` with its reason: never as
    "no listeners". One account's failure never stops the others: it is returned with the error it gave.
    ``on_read(name, callbacks)`` is called for each account as soon as it is read, so that work
    on it (an audit's rules) is done while the other reads wait on the network, not after the
    last one; if it raises, reading stops and its exception is raised as it is.

    Returns:
        The certain listing of each account read, and the error of each account that could not be.
    """
    check_concurrency(concurrency)
    found: dict[str, Listing] = {}
    failed: dict[str, ThingSpaceError] = {}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        queue.put_nowait(name)
    bar = progress_bar(len(names), enabled=progress, description=description)
    stopped: list[BaseException] = []

    async def worker() -> None:
        while not queue.empty() and not stopped:
            name = queue.get_nowait()
            wanted = expect.get(name, ()) if isinstance(expect, Mapping) else expect
            try:
                listing = await client.listing(name, expect=wanted, confirm_all=confirm_all)
                if not listing.certain:
                    raise UncertainListingError(name, listing.reason, listing.detail)
                found[name] = listing
            except ThingSpaceError as exc:  # one account's failure never stops the others
                failed[name] = exc
            except Exception as exc:  # a tskit bug too: keep the others; its text may hold a secret
                log.error("reading %s failed unexpectedly: %s", name, _where(exc))
                failed[name] = ThingSpaceError(f"reading it failed unexpectedly ({type(exc).__name__})")
            else:
                if on_read is not None:
                    if stopped:
                        return
                    try:
                        on_read(name, list(listing.callbacks))
                    except Exception as exc:  # the caller's error (a rule's bug): stop, and raise it as it is
                        stopped.append(exc)
                        raise _Stopped from None  # the task group cancels the reads in flight
            if bar is not None:
                bar.update(1)
            if on_progress is not None:
                on_progress(len(found) + len(failed), len(names))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(names))):
                group.create_task(worker())
    except* _Stopped:
        pass  # raised below, as it is, outside the group's ExceptionGroup
    finally:
        if bar is not None:
            bar.close()
    if stopped:
        raise stopped[0]
    return found, failed


def _where(exc: BaseException) -> str:
    """An unexpected error's traceback for the log: where it was raised, and its type, never its text (a secret?)."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"{type(exc).__module__}.{type(exc).__qualname__} (its text is not logged)\nTraceback:\n{frames}"


class _Stopped(Exception):
    """A worker's ``on_read`` raised: the task group cancels the others."""


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
) -> Audit:
    """Read every account's callbacks with bounded concurrency and run the rules over them.

    ``on_progress(done, total)`` is called after each account, e.g. to drive a widget.
    """
    names = account_list(accounts)
    expected = tuple(check.service_name(s, allow_unknown=True) for s in expect)
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
