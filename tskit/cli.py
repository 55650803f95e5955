"""The ``tskit`` command: list, register, deregister, audit, the simulator server, and a demo."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from tskit._facade import ThingSpace

EPILOG = """\
credentials:
  THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET, THINGSPACE_USERNAME and THINGSPACE_PASSWORD
  (and THINGSPACE_BASE_URL). With none of them set, tskit uses its embedded ThingSpace simulator
  and its demo accounts 0000123456-00001, -00002 and -00003.

exit codes:
  0 done; 1 ThingSpace or the network failed; 2 bad usage or input (nothing was sent);
  3 audit findings at or above --fail-on; 4 some accounts could not be read.
"""

EXIT_FINDINGS = 3
EXIT_UNREADABLE = 4


class UsageError(Exception):
    """A mistake on the command line, reported with exit code 2."""


def _show(frame: pd.DataFrame, fmt: str = "table") -> str:
    if fmt == "csv":
        return str(frame.to_csv(index=False))
    if fmt == "json":
        return str(frame.to_json(orient="records", indent=2)) + "\n"
    return (frame.to_string(index=False) if len(frame) else "(none)") + "\n"


def _connect(args: argparse.Namespace) -> ThingSpace:
    import tskit

    return tskit.connect(simulator=True if getattr(args, "simulator", False) else None)


def _accounts(args: argparse.Namespace) -> list[str]:
    from tskit.audit import read_accounts_file

    names = list(args.accounts)
    if args.accounts_file:
        if args.accounts_file == "-":
            names += [line.split("#", 1)[0].strip() for line in sys.stdin if line.split("#", 1)[0].strip()]
        else:
            try:
                names += read_accounts_file(args.accounts_file)
            except OSError as exc:
                raise UsageError(f"cannot read the accounts file: {exc}") from None
    if not names:
        raise UsageError("give account names, or --accounts-file FILE")
    return names


def _cmd_list(args: argparse.Namespace) -> int:
    import pandas as pd

    import tskit
    from tskit.audit import account_list

    names = account_list(_accounts(args))
    with _connect(args) as ts:
        frames = [ts.list_callbacks(account) for account in names]
    frame = pd.concat(frames, ignore_index=True) if frames else tskit.callbacks_frame([])
    sys.stdout.write(_show(frame, args.format))
    return 0


def _password(args: argparse.Namespace) -> str | None:
    if args.password_env:
        if args.password_env not in os.environ:
            raise UsageError(f"--password-env: the variable {args.password_env} is not set")
        return os.environ[args.password_env]
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if args.username and sys.stdin.isatty():
        return getpass.getpass("Listener password (empty for none): ") or None
    return None


def _cmd_register(args: argparse.Namespace) -> int:
    password = _password(args)
    with _connect(args) as ts:
        result = ts.register_callback(
            args.account,
            args.service,
            args.url,
            username=args.username,
            password=password,
            allow_any_port=args.allow_any_port,
            allow_unknown_service=args.allow_unknown_service,
        )
    note = " (confirmed by listing: the answer was lost)" if result.confirmed_by_listing else ""
    print(f"Registered {result.service_name} for {result.account_name}{note}")
    return 0


def _cmd_deregister(args: argparse.Namespace) -> int:
    with _connect(args) as ts:
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("deregister needs --yes when it cannot ask (no terminal)")
            answer = input(f"Deregister {args.service} of account {args.account} on {ts.source}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("Nothing was changed.")
                return 0
        result = ts.deregister_callback(args.account, args.service, allow_unknown_service=args.allow_unknown_service)
    print(f"Deregistered {result.service_name} for {result.account_name}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from tskit.audit import Audit, Severity

    expect = [s.strip() for s in ",".join(args.expect).split(",") if s.strip()]
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
    names = _accounts(args)
    with _connect(args) as ts:
        audit = ts.audit(names, expect, concurrency=args.concurrency, progress=False if args.no_progress else None)
    if args.save:
        audit.save(args.save)
    changes = audit.diff(old) if old is not None else None
    if args.format == "json":
        from tskit.audit._snapshot import document

        out = document(audit)
        if changes is not None:
            out["diff"] = json.loads(changes.to_json(orient="records"))
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(_show(changes if changes is not None else audit.findings, "csv"))
    else:
        sys.stdout.write(repr(audit) + "\n")
        if changes is not None:
            sys.stdout.write(f"\nChanges since {old.started_at:%Y-%m-%d %H:%M} UTC:\n" if old else "")
            sys.stdout.write(_show(changes))
    if audit.error_list:
        return EXIT_UNREADABLE
    if threshold is not None and audit.at_or_above(threshold):
        return EXIT_FINDINGS
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """A guided tour of the three calls and an audit, always against a fresh embedded simulator."""
    import tskit

    ts = tskit.connect(simulator=True)
    account = "0000123456-00003"
    accounts = ts.simulator.accounts if ts.simulator else []
    print(f"Connected: {ts!r}\n")
    for name in accounts:
        print(f"Callbacks of {name}:\n{_show(ts.list_callbacks(name))}")
    result = ts.register_callback(
        account, "CarrierService", "https://listener.example.com/carrier", username="tsuser", password="s3cret"
    )
    print(f"Registered {result.service_name} for {result.account_name}:\n{_show(ts.list_callbacks(account))}")
    result = ts.deregister_callback(account, "CarrierService")
    print(f"Deregistered {result.service_name} for {result.account_name}:\n{_show(ts.list_callbacks(account))}")
    try:
        ts.list_callbacks("9999999999-00001")
    except tskit.ApiError as error:
        print(
            f"An account that does not exist gives ThingSpace's error code and message:\n  {error.error_code}\n"
            f"  {error.error_message}\n"
        )
    try:
        ts.register_callback(account, "CarierService", "https://listener.example.com:8443/x")
    except tskit.ValidationError as error:
        print(f"Bad input is refused before anything is sent:\n  {error}\n")
    print("An audit of every demo account, expecting CarrierService:")
    print(repr(ts.audit(accounts, ["CarrierService"], progress=False)))
    return 0


def _cmd_reset_login(args: argparse.Namespace) -> int:
    from tskit import _refusals
    from tskit._config import Credentials
    from tskit._config import base_url as check_base_url

    credentials = Credentials.from_env()
    if credentials is None:
        raise UsageError("set the THINGSPACE_* credential variables of the user to reset")
    url = check_base_url()
    if _refusals.forget(url, credentials):
        print(f"Forgot the refused login of {credentials.username} on {url}: the next run will try to log in.")
    else:
        print(f"No refused login of {credentials.username} on {url} was on record.")
    return 0


def _add_accounts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("accounts", nargs="*", metavar="ACCOUNT", help="account name, e.g. 0000123456-00001")
    parser.add_argument(
        "--accounts-file",
        metavar="FILE",
        help="more account names, one per line ('#' starts a comment; '-' reads stdin)",
    )


def _add_target(parser: argparse.ArgumentParser) -> None:
    """The account and service a register or deregister is about."""
    parser.add_argument("account", help="account name, e.g. 0000123456-00001")
    parser.add_argument("service", help="callback service, e.g. CarrierService")
    parser.add_argument("--allow-unknown-service", action="store_true", help="accept a service tskit does not know")


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--simulator", action="store_true", help="use the embedded simulator even when credentials are set"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tskit`` command."""
    parser = argparse.ArgumentParser(
        prog="tskit",
        description="Manage the callback listeners of Verizon ThingSpace Connectivity Management accounts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list the callback listeners of accounts (passwords masked)")
    _add_accounts(listing)
    listing.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    _add_backend(listing)
    listing.set_defaults(func=_cmd_list)

    register = commands.add_parser(
        "register",
        help="register the listener URL of one service of an account",
        description="Register (or replace) the listener URL of one service. The password is never taken "
        "on the command line, where other users could see it: use --password-env or --password-stdin, "
        "or type it when asked.",
    )
    _add_target(register)
    register.add_argument("url", help="listener URL, e.g. https://listener.example.com/carrier")
    register.add_argument("--username", help="username ThingSpace sends back in every message (40 characters at most)")
    secret = register.add_mutually_exclusive_group()
    secret.add_argument("--password-env", metavar="VAR", help="read the listener password from this variable")
    secret.add_argument("--password-stdin", action="store_true", help="read the listener password from stdin")
    register.add_argument("--allow-any-port", action="store_true", help="skip the allowed-ports check")
    _add_backend(register)
    register.set_defaults(func=_cmd_register)

    deregister = commands.add_parser("deregister", help="stop the messages of one service of an account")
    _add_target(deregister)
    deregister.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)"
    )
    _add_backend(deregister)
    deregister.set_defaults(func=_cmd_deregister)

    audit = commands.add_parser(
        "audit",
        help="check the listeners of many accounts; exit non-zero on findings (for cron and CI)",
        description="Read the callback listeners of many accounts and report what will not work or is "
        "unsafe: plain HTTP, credentials over HTTP, hosts Verizon cannot reach, ports it does not deliver "
        "to, shared URLs, missing services, listeners without credentials, unknown services.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_accounts(audit)
    audit.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="SERVICES",
        help="services every account should have, comma-separated (repeatable)",
    )
    audit.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table: summary; csv: the findings (or the diff); json: everything",
    )
    audit.add_argument(
        "--fail-on", metavar="SEVERITY", help="exit 3 if findings at or above it exist: info, low, medium or high"
    )
    audit.add_argument("--save", metavar="FILE", help="save a snapshot (.json or .csv; never holds passwords)")
    audit.add_argument("--diff", metavar="OLD", help="also report changes since this snapshot")
    audit.add_argument("--concurrency", type=int, default=16, help="accounts read at once (default 16)")
    audit.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_backend(audit)
    audit.set_defaults(func=_cmd_audit)

    listen = commands.add_parser(
        "listen",
        help="run a callback listener that stores every ThingSpace message in SQLite",
        description="Accept ThingSpace's callback POSTs, check the username and password inside each "
        "body, store each message in SQLite before answering 200, count redeliveries once.",
    )
    from tskit.listener import _cli as listener_cli

    listener_cli.add_arguments(listen)
    listen.set_defaults(func=listener_cli.run)

    reset = commands.add_parser(
        "reset-login",
        help="forget a refused login, so the next run tries these credentials again",
        description="After ThingSpace refuses a login, tskit will not try the same credentials again from "
        "any run (5 failed logins lock the user). Once the user is unlocked, or if the refusal was "
        "temporary, this forgets the refusal of the user in the THINGSPACE_* variables.",
    )
    reset.set_defaults(func=_cmd_reset_login)

    demo = commands.add_parser("demo", help="a short tour of tskit on the embedded simulator")
    demo.set_defaults(func=_cmd_demo)

    sim = commands.add_parser(
        "simulator",
        help="serve the ThingSpace simulator over HTTP",
        description="Serve the ThingSpace simulator over HTTP under production's paths "
        "(/api/ts/v1/oauth2/token, /api/m2m/v1/session/login, /api/m2m/v1/callbacks/...). "
        "It prints the export lines that point tskit, or any other client, at it.",
    )
    from tskit.simulator import _cli as simulator_cli

    simulator_cli.add_arguments(sim)
    sim.set_defaults(func=simulator_cli.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tskit`` command; returns the exit code."""
    import tskit

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except UsageError as error:
        print(f"tskit {args.command}: {error}", file=sys.stderr)
        return 2
    except tskit.ValidationError as error:
        print(f"tskit {args.command}: {error}", file=sys.stderr)
        return 2
    except tskit.ThingSpaceError as error:
        print(f"tskit {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tskit {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
