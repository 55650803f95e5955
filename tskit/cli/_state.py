"""The desired-state commands of ``tskit``: export, plan, apply, rotate."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Final

import tskit.cli._common as common
from tskit import ThingSpace, ThingSpaceError
from tskit import _validate as check
from tskit.cli._common import EXIT_UNREADABLE, UsageError, confirm
from tskit.cli._options import add_accounts, add_backend
from tskit.cli._words import cli_words
from tskit.ops import check_concurrency
from tskit.state import (
    AccountLockedError,
    Holder,
    Journal,
    JournalError,
    PartialExportWarning,
    Plan,
    RotationDeclined,
    StalePlanError,
    plan_text,
    result_text,
    unread_text,
)

#: ``tskit plan``: Terraform's ``-detailed-exitcode``, so CI can alert on drift.
EXIT_NO_CHANGES: Final = 0
EXIT_FAILED: Final = 1
EXIT_CHANGES: Final = 2

PLAN_EPILOG = """\
exit codes:
  0 nothing would change; 2 changes are pending; 1 failure (a bad file, an account that
  could not be read, ThingSpace or the network failed).
"""


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


def _plan(ts: ThingSpace, args: argparse.Namespace) -> Plan:
    return ts.plan(args.file, prune=args.prune, concurrency=args.concurrency, progress=_progress(args))


def _journal(args: argparse.Namespace) -> Journal | None:
    """The --journal file, checked before anything is read or sent."""
    return Journal.for_writing(args.journal) if args.journal else None


def _check_output(path: str) -> None:
    """Refuse an --output path that cannot be written, before anything is read; no folder is made."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {path}: the folder {target.parent} does not exist")


class OutputError(Exception):
    """A file the command was asked to write that cannot be written."""


def _failure(args: argparse.Namespace, error: Exception) -> int:
    print(f"tskit {args.command}: {cli_words(error, args)}", file=sys.stderr)
    return EXIT_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    """Write what the accounts hold as a desired-state TOML file (stdout or --output)."""
    check_concurrency(args.concurrency)  # before connecting, as every option
    names = common.accounts(args)
    try:
        if args.output:
            _check_output(args.output)
        with common.connect(args) as ts, warnings.catch_warnings():
            warnings.simplefilter("ignore", PartialExportWarning)  # said below, as a command says it
            state = ts.export(
                names, concurrency=args.concurrency, progress=_progress(args), allow_partial=args.allow_partial
            )
        if args.output:
            try:
                state.save(args.output)
            except OSError as exc:
                raise OutputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    except OutputError as error:
        return _failure(args, error)
    if args.output:
        count = len(state.accounts)
        print(
            f"Wrote {args.output}: {count} account{'' if count == 1 else 's'} (passwords as references).",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(state.dumps())
    if state.unread:
        count = len(state.unread)
        print(
            f"tskit export: warning: {count} account{' ' if count == 1 else 's '}could not be read and "
            f"{'is' if count == 1 else 'are'} not in the export:\n{unread_text(state.unread)}",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Show what apply would change; the exit code says whether anything would."""
    try:
        check_concurrency(args.concurrency)  # before connecting, as every option
        with common.connect(args) as ts:
            plan = _plan(ts, args)
    except (ThingSpaceError, UsageError) as error:
        return _failure(args, error)
    if args.format == "json":
        document = {
            "source": plan.source,
            "desired": plan.desired.source,
            "prune": plan.prune,
            "counts": plan.counts(),
            "changes": json.loads(plan.changes.astype({"action": "str"}).to_json(orient="records")),
            "errors": json.loads(plan.errors.to_json(orient="records")),
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _show_plan(plan)
    if plan.error_list:
        return EXIT_FAILED
    return EXIT_CHANGES if plan.has_changes else EXIT_NO_CHANGES


def _show_plan(plan: Plan) -> None:
    sys.stdout.write(cli_words(plan_text(plan, cli=True)) + "\n")


#: Apply and rotate ask on a terminal; --yes answers for scripts, and is needed without one.
_NO_TERMINAL: Final = "--yes is needed when there is no terminal to ask for confirmation"


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """Ask on a terminal, as apply and rotate both do."""
    return confirm(question, yes=args.yes, no_terminal=_NO_TERMINAL)


def cmd_apply(args: argparse.Namespace) -> int:
    """Plan, show the plan, ask (on a terminal), apply; exit 1 if any step failed."""
    check_concurrency(args.concurrency)  # before connecting, as every option
    journal = _journal(args)
    with common.connect_to_change(args) as ts:
        while True:
            plan = _plan(ts, args)
            _show_plan(plan)
            if not plan.has_changes:
                _close_crashed(args, plan, journal)
                return EXIT_FAILED if plan.error_list else 0
            count = len(plan.steps)
            question = f"Apply {count} change{'' if count == 1 else 's'} to {plan.source}? [y/N] "
            if common.declined(question, yes=args.yes, no_terminal=_NO_TERMINAL):
                return 0
            try:
                result = plan.apply(
                    concurrency=args.concurrency,
                    journal=journal,
                    progress=_progress(args),
                    lock_wait=args.lock_wait,
                    on_wait=_waiting(args),
                )
            except StalePlanError:
                print("The plan went stale while waiting for an answer: planning again.", file=sys.stderr)
                continue
            break
    sys.stdout.write(cli_words(result_text(result, cli=True)) + "\n")
    if result.changed_since_plan:
        count = len(result.changed_since_plan)
        print(
            f"tskit apply: {count} step{' was' if count == 1 else 's were'} not sent (changed-since-plan): "
            "the listener changed since the plan. Run `tskit plan` again to see what ThingSpace holds now.",
            file=sys.stderr,
        )
    unchecked = [o for o in result.not_sent if o.outcome == "unchecked"]
    if unchecked:
        count = len(unchecked)
        print(
            f"tskit apply: {count} step{' was' if count == 1 else 's were'} not sent (unchecked): no listing "
            "could show the account for certain just before it. Run `tskit apply` again later.",
            file=sys.stderr,
        )
    return 0 if result.ok and not plan.error_list else EXIT_FAILED


def _close_crashed(args: argparse.Namespace, plan: Plan, journal: Journal | None) -> None:
    """With nothing to change, still close what a crashed apply of these accounts left unfinished.

    An account another run holds now is left to it (that run settles what it finds), and the
    command still exits 0: nothing of this file is left to do.
    """
    try:
        result = plan.apply(journal=journal, progress=False, lock_wait=0)
    except AccountLockedError as busy:
        print(
            f"tskit apply: {busy.account_name} is held by {busy.holder or 'another process'}: "
            "unfinished steps of earlier applies, if any, are left to it",
            file=sys.stderr,
        )
        return
    except JournalError as error:
        print(f"tskit apply: {cli_words(error)}", file=sys.stderr)
        return
    if result.resumed:
        steps = f"{result.resumed} interrupted step{'' if result.resumed == 1 else 's'}"
        print(f"{steps} of an earlier apply closed; journal {result.journal.path}")


def _waiting(args: argparse.Namespace) -> Callable[[str, Holder | None], None]:
    """What to say on stderr when an account is held by another apply or rotation."""

    def say(account: str, holder: Holder | None) -> None:
        who = holder or "another process"
        wait = f"at most {args.lock_wait:g} s"
        print(f"tskit {args.command}: waiting for {account}, held by {who} ({wait})", file=sys.stderr)

    return say


def cmd_rotate(args: argparse.Namespace) -> int:
    """Move every listener of the accounts to the password in --password-env, verified."""
    check_concurrency(args.concurrency)  # before connecting, as every option
    if args.password_env not in os.environ:
        raise UsageError(f"--password-env: the variable {args.password_env} is not set")
    services = [s.strip() for s in ",".join(args.services).split(",") if s.strip()] or None
    names = common.accounts(args)
    journal = _journal(args)
    for service in services or ():  # refused before the question, as every input is
        check.service_name(service, allow_unknown=args.allow_unknown_service)
    if not args.yes and not sys.stdin.isatty():
        _confirm(args, "")  # no terminal to ask on: refused before anything is read
    with common.connect_to_change(args) as ts:
        which = ", ".join(services) if services else "every service"

        def confirm(moving: list[tuple[str, str, str]]) -> bool:
            # Asked once the accounts are read and every check passed: what would move, then the question.
            if args.yes:
                return True
            for account, service, url in moving[:20]:
                print(f"  rotate {account} {service} {cli_words(url)}")
            if len(moving) > 20:
                print(f"  ... and {len(moving) - 20} more")
            count = len(moving)
            question = (
                f"Move {count} listener{'' if count == 1 else 's'} ({which}) on {ts.source} to the new password? [y/N] "
            )
            return _confirm(args, question)

        try:
            result = ts.rotate_password(
                names,
                services,
                new_password=os.environ[args.password_env],
                concurrency=args.concurrency,
                journal=journal,
                progress=_progress(args),
                include_without_credentials=args.include_without_credentials,
                allow_http=args.allow_http,
                allow_unknown_service=args.allow_unknown_service,
                desired=args.state,
                lock_wait=args.lock_wait,
                confirm=confirm,
            )
        except RotationDeclined:
            print("Nothing was changed.")
            return 0
    # What to do next goes to stderr, once, after the result.
    sys.stdout.write(cli_words(result.text(cli=True, next_step=False)) + "\n")
    unsure = [(a, r) for a, s, r in result.remaining_list if not s]
    for account, reason in unsure:
        print(cli_words(f"tskit rotate: {account}: not verified, {reason}"), file=sys.stderr)
    if result.matched and (result.variables or result.fingerprinted):
        print(f"tskit rotate: {result.next_step}", file=sys.stderr)
    elif result.matched:
        print(
            f"tskit rotate: now set the variable your desired-state file names for these passwords to the value "
            f"of {args.password_env} (give --state FILE to have it named), then `tskit plan` shows nothing.",
            file=sys.stderr,
        )
    return 0 if result.ok else EXIT_FAILED


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, default=16, help="calls at once (default 16)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend(parser)


def _lock_wait(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 86400 seconds")
    return value


def _add_lock_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-wait",
        type=_lock_wait,
        default=60.0,
        metavar="SECONDS",
        help="wait at most this long for accounts another apply or rotate is changing, then exit 1 naming "
        "its holder (default 60; 0: refuse at once)",
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``export``, ``plan``, ``apply`` and ``rotate`` to the ``tskit`` command."""
    export = commands.add_parser(
        "export",
        help="write what accounts hold as a desired-state TOML file (passwords as references)",
        description="Read the accounts' listeners and write them as TOML for `tskit plan` and `tskit apply`. "
        "Passwords are never written: each one is a fingerprint reference meaning 'keep the password it has'; "
        'replace one by password = { env = "VARIABLE" } to change it.',
    )
    add_accounts(export)
    export.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    export.add_argument(
        "--allow-partial",
        action="store_true",
        help="export the accounts that could be read, list the others, exit 4 (default: export nothing, exit 1)",
    )
    _common(export)
    export.set_defaults(func=cmd_export)

    plan = commands.add_parser(
        "plan",
        help="show what `tskit apply FILE` would change (exit 2 when something would)",
        description="Compare a desired-state TOML file with what ThingSpace holds. Sends no change.",
        epilog=PLAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("file", metavar="FILE", help="desired-state TOML file")
    plan.add_argument("--prune", action="store_true", help="also delete listeners the file does not name")
    plan.add_argument("--format", choices=["table", "json"], default="table", help="output format")
    _common(plan)
    plan.set_defaults(func=cmd_plan)

    apply = commands.add_parser(
        "apply",
        help="make ThingSpace hold a desired-state TOML file, every step journaled",
        description="Plan, show the plan, ask for confirmation on a terminal, then apply it. Each step is "
        "written to the journal before it is sent and again once its outcome is known (no passwords, only "
        "fingerprints). After a crash, run the same command again: it plans from the live state, so what "
        "took effect is not repeated.",
    )
    apply.add_argument("file", metavar="FILE", help="desired-state TOML file")
    apply.add_argument("--prune", action="store_true", help="also delete listeners the file does not name")
    apply.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    apply.add_argument("--journal", metavar="PATH", help="JSON Lines journal to append to (default: a new file)")
    _add_lock_wait(apply)
    _common(apply)
    apply.set_defaults(func=cmd_apply)

    rotate = commands.add_parser(
        "rotate",
        help="move every listener of accounts to a new password, verified by fingerprint",
        description="Update every listener of the accounts (or only --services) to the password held by "
        "--password-env, journaled like apply, then read them again and list any still on another password.",
    )
    add_accounts(rotate)
    rotate.add_argument("--password-env", metavar="VAR", required=True, help="variable holding the new password")
    rotate.add_argument(
        "--services", action="append", default=[], metavar="SERVICES", help="only these services, comma-separated"
    )
    rotate.add_argument("--journal", metavar="PATH", help="JSON Lines journal to append to (default: a new file)")
    _add_lock_wait(rotate)
    rotate.add_argument(
        "--state", metavar="FILE", help="the desired-state file naming these passwords: its variables are named"
    )
    rotate.add_argument(
        "--include-without-credentials",
        action="store_true",
        help="also give the password to listeners with no username nor password (left alone by default)",
    )
    rotate.add_argument(
        "--allow-http", action="store_true", help="send the password to plain-HTTP listeners too (clear text)"
    )
    rotate.add_argument("--allow-unknown-service", action="store_true", help="accept a service tskit does not know")
    rotate.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    _common(rotate)
    rotate.set_defaults(func=cmd_rotate)
