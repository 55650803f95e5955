"""``tskit audit``: check the listeners of many accounts; exit 3 on findings, 4 on accounts not read."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import tskit.cli._common as common
from tskit import ThingSpaceError, ValidationError
from tskit import _validate as check
from tskit.audit import AccountError, Audit, Severity, snapshot_document, text_summary
from tskit.cli._common import EPILOG, EXIT_FINDINGS, EXIT_UNREADABLE, UsageError
from tskit.cli._options import add_accounts, add_backend, add_format, add_limit, positive
from tskit.cli._render import colour_wanted, show
from tskit.cli._words import cli_vocabulary, cli_words


def cmd_audit(args: argparse.Namespace) -> int:
    """Read the accounts, report the findings (and changes since --diff), save a snapshot (--save)."""
    expect = [s.strip() for s in ",".join(args.expect).split(",") if s.strip()]
    for service in expect:
        try:
            check.service_name(service, allow_unknown=args.allow_unknown_service)
        except ValidationError as error:
            raise UsageError(cli_words(error.renamed("--expect"), args)) from None
    try:
        threshold = Severity.parse(args.fail_on) if args.fail_on else None
    except ValueError as exc:
        raise UsageError(f"--fail-on: {exc}") from None
    old = None
    if args.diff:
        try:
            old = Audit.load(args.diff)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--diff: {exc}") from None
    if not 1 <= args.concurrency <= 256:
        raise UsageError(f"--concurrency: {args.concurrency} is out of range (1 to 256)")
    if args.save:
        _check_save(args.save)
    names = common.accounts(args)
    with common.connect(args) as ts:
        audit = ts.audit(
            names,
            expect,
            concurrency=args.concurrency,
            progress=False if args.no_progress else None,
            allow_unknown_service=args.allow_unknown_service,
        )
        errors = audit.error_list
        if errors and len(errors) == len(audit.accounts) and all(e.error == "AuthenticationError" for e in errors):
            # Not one account was read because the login failed: say that once, not once per account.
            refused = ts.client.auth.refused
            if refused is None:
                raise ThingSpaceError(f"the login failed: {errors[0].message}")
            failure = ThingSpaceError(refused.describe(cli_vocabulary(args)))
            failure.reason, failure.remedy = refused.reason, refused.remedy  # said in the CLI's words below
            raise failure
        if errors and len(errors) == len(audit.accounts) and len({(e.error, e.message) for e in errors}) == 1:
            # Not one account was read, all for one reason (ThingSpace unreachable, say): an error.
            raise ThingSpaceError(f"no account could be read: {errors[0].message}")
    if args.save:
        audit.save(args.save)
    _write(args, audit, old)
    if audit.error_list:
        if args.format != "table":  # the table names them; csv and json keep stdout for data
            _tell_unreadable(audit.error_list)
        return EXIT_UNREADABLE
    if threshold is not None and audit.at_or_above(threshold):
        return EXIT_FINDINGS
    return 0


def _write(args: argparse.Namespace, audit: Audit, old: Audit | None) -> None:
    """The audit on stdout, in --format, with the changes since --diff's snapshot."""
    changes = audit.diff(old) if old is not None else None
    if args.format == "json":
        out = snapshot_document(audit)
        if changes is not None:
            out["diff"] = json.loads(changes.to_json(orient="records"))
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    elif args.format == "csv":
        sys.stdout.write(show(changes if changes is not None else audit.findings, "csv"))
    else:
        sys.stdout.write(text_summary(audit, limit=args.limit, colour=colour_wanted(sys.stdout), command=True) + "\n")
        if changes is not None:
            sys.stdout.write(f"\nChanges since {old.started_at:%Y-%m-%d %H:%M} UTC:\n" if old else "")
            sys.stdout.write(show(changes, limit=args.limit))


def _tell_unreadable(errors: Sequence[AccountError]) -> None:
    """Name on stderr each account an audit could not read, and why."""
    count = len(errors)
    print(f"tskit audit: {count} account{'' if count == 1 else 's'} could not be read:", file=sys.stderr)
    for error in errors:
        why = " ".join(str(part) for part in (error.error, error.status_code or "", error.message) if part)
        print(f"  {error.account_name}: {why}", file=sys.stderr)


def _check_save(path: str) -> None:
    """Refuse a --save name that could not be written, before any account is read."""
    target = Path(path)
    if target.suffix.lower() not in (".json", ".csv"):
        raise UsageError(f"--save: {path!r} must end in .json (everything) or .csv (the registrations)")
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"--save: the folder {str(folder)!r} does not exist")
    if target.is_dir():
        raise UsageError(f"--save: {path!r} is a folder; give a file name")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit`` to the ``tskit`` command."""
    audit = commands.add_parser(
        "audit",
        help="check the listeners of many accounts; with --fail-on, exit 3 on findings (for cron and CI)",
        description="Read the callback listeners of many accounts and report what will not work or is "
        "unsafe: plain HTTP, credentials over HTTP, hosts Verizon cannot reach, ports it does not deliver "
        "to, shared URLs, missing services, listeners without credentials, unknown services.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_accounts(audit)
    audit.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="SERVICES",
        help="services every account should have, comma-separated (repeatable)",
    )
    add_format(audit, help="table: summary; csv: the findings (or the diff); json: everything")
    audit.add_argument(
        "--fail-on", metavar="SEVERITY", help="exit 3 if findings at or above it exist: info, low, medium or high"
    )
    audit.add_argument("--save", metavar="FILE", help="save a snapshot (.json or .csv; never holds passwords)")
    audit.add_argument("--diff", metavar="OLD", help="also report changes since this snapshot")
    audit.add_argument(
        "--allow-unknown-service", action="store_true", help="accept --expect services tskit does not know"
    )
    audit.add_argument("--concurrency", type=positive, default=16, help="accounts read at once (default 16)")
    audit.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_limit(audit)
    add_backend(audit)
    audit.set_defaults(func=cmd_audit)
