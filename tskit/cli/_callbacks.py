"""The commands of one account's callbacks: list, services, register, deregister."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import textwrap

import tskit.cli._common as common
from tskit import ThingSpace, callbacks_frame, concat_frames, services_frame
from tskit import _validate as check
from tskit.cli._common import NothingChanged, UsageError
from tskit.cli._options import (
    NoPasswordOnCommandLine,
    add_accounts,
    add_backend,
    add_format,
    add_limit,
    add_target,
)
from tskit.cli._render import show
from tskit.ops.preflight import check_register

_OUTCOME_NOTES = {
    "sent": "",
    "resent": " (sent again: a listing showed the first attempt had not taken effect)",
    "confirmed": " (confirmed by listing the account's callbacks)",
}


def cmd_list(args: argparse.Namespace) -> int:
    """``tskit list``: the callbacks of accounts, passwords masked."""
    names = common.accounts(args)
    with common.connect(args) as ts:
        frames = [ts.list_callbacks(account) for account in names]
    frame = concat_frames(frames) if frames else callbacks_frame([])
    sys.stdout.write(show(frame, args.format, args.limit))
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    """``tskit services``: the callback services, with what each sends."""
    frame = services_frame()
    if args.format != "table":
        sys.stdout.write(show(frame, args.format))
        return 0
    # left-aligned, descriptions wrapped under their own column: fits 100 columns
    width = max(len(name) for name in frame["service_name"]) + 2
    print(f"{'SERVICE':<{width}}WHAT IT SENDS")
    for name, description in zip(frame["service_name"], frame["description"], strict=True):
        lines = textwrap.wrap(str(description), width=100 - width) or [""]
        print(f"{name:<{width}}{lines[0]}")
        for line in lines[1:]:
            print(" " * width + line)
    return 0


def _password(args: argparse.Namespace) -> str | None:
    if args.password_env:
        if args.password_env not in os.environ:
            raise UsageError(f"--password-env: the variable {args.password_env} is not set")
        if not os.environ[args.password_env]:
            raise UsageError(f"--password-env: the variable {args.password_env} is empty")
        return os.environ[args.password_env]
    if args.password_stdin:
        try:
            line = sys.stdin.readline()
        except UnicodeError:
            raise UsageError("--password-stdin: the password read from stdin is not valid UTF-8") from None
        line = line.removesuffix("\n").removesuffix("\r")  # one line end, LF or CRLF
        if not line:
            raise UsageError("--password-stdin: the password read from stdin is empty")
        return line
    if args.no_password:
        return None
    if not sys.stdin.isatty():
        # never a silent listener without a password: it may replace one that had one
        raise UsageError(
            "no terminal to ask for the listener password: use --password-env VAR or --password-stdin, "
            "or --no-password for a listener without one"
        )
    try:
        return getpass.getpass("Listener password (empty for none): ") or None
    except EOFError:
        print(file=sys.stderr)
        raise NothingChanged(1) from None
    except KeyboardInterrupt:
        print(file=sys.stderr)  # end the prompt's line
        raise


def cmd_register(args: argparse.Namespace) -> int:
    """``tskit register``: register (or replace) the listener of one service, asking first when it matters."""
    # the whole command line is checked before the password is asked for or anything is sent
    check.account_name(args.account)
    check.service_name(args.service, allow_unknown=args.allow_unknown_service)
    check.listener_url(args.url, allow_any_port=args.allow_any_port)
    check.credential("username", args.username)
    serious = _serious_findings(args)
    # A variable or stdin is read (and checked) now; a prompt waits until the notices and what
    # would be replaced are shown, so the password is typed knowing what it is for.
    prompt = sys.stdin.isatty() and not (args.password_env or args.password_stdin or args.no_password)
    password = None if prompt else _password(args)
    with common.connect_to_change(args) as ts:
        replaced = _replaced(ts, args)
        if replaced:
            print(f"tskit register: would replace {replaced}", file=sys.stderr)
        for detail in serious:
            print(f"tskit register: warning: {detail}", file=sys.stderr)
        if serious or replaced:
            what = "Replace the listener" if replaced else "Register it anyway"
            if common.declined(f"{what} ({args.service} of {args.account} on {ts.source})? [y/N] ", yes=args.yes):
                return 0
        if prompt:
            password = _password(args)
        result = ts.register_callback(
            args.account,
            args.service,
            args.url,
            username=args.username,
            password=password,
            allow_any_port=args.allow_any_port,
            allow_unknown_service=args.allow_unknown_service,
        )
    print(f"Registered {result.service_name} for {result.account_name}{_OUTCOME_NOTES[result.outcome]}")
    if result.url and result.url != args.url:
        print(f"Registered as {result.url}")
    return 0


def _serious_findings(args: argparse.Namespace) -> list[str]:
    """What an audit would rate high about this registration (e.g. an address ThingSpace cannot reach)."""
    found = check_register(
        args.account,
        args.service,
        args.url,
        username=args.username or "",
        has_password=not args.no_password,  # any other way gives a password, or stops before sending
        allow_any_port=args.allow_any_port,
    )
    return [f.detail for f in found.serious]


def _replaced(ts: ThingSpace, args: argparse.Namespace) -> str:
    """The listener a register would replace, in words (without its password), or ``""``."""
    current = ts.list_callbacks(args.account)
    old = current[current["service_name"] == args.service]
    if not len(old):
        return ""
    row = old.iloc[0]
    return (
        f"{args.service} of {args.account} (currently {row['url']}, username {row['username'] or 'none'}, "
        f"password {'set' if row['password'] else 'none'})"
    )


def cmd_deregister(args: argparse.Namespace) -> int:
    """``tskit deregister``: stop the messages of one service, asking first."""
    check.account_name(args.account)
    check.service_name(args.service, allow_unknown=args.allow_unknown_service)
    with common.connect_to_change(args) as ts:
        question = f"Deregister {args.service} of account {args.account} on {ts.source}? [y/N] "
        if common.declined(question, yes=args.yes):
            return 0
        result = ts.deregister_callback(args.account, args.service, allow_unknown_service=args.allow_unknown_service)
    if result.was_registered is False:
        print(f"{result.service_name} of {result.account_name} had no listener: nothing to deregister")
        return 0
    print(f"Deregistered {result.service_name} for {result.account_name}{_OUTCOME_NOTES[result.outcome]}")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``list``, ``services``, ``register`` and ``deregister`` to the ``tskit`` command."""
    listing = commands.add_parser("list", help="list the callback listeners of accounts (passwords masked)")
    add_accounts(listing)
    add_format(listing)
    add_limit(listing)
    add_backend(listing)
    listing.set_defaults(func=cmd_list)

    services = commands.add_parser("services", help="the callback services ThingSpace has, with what each sends")
    add_format(services)
    services.set_defaults(func=cmd_services)

    register = commands.add_parser(
        "register",
        help="register the listener URL of one service of an account",
        description="Register (or replace) the listener URL of one service. The password is never taken "
        "on the command line, where other users could see it: use --password-env or --password-stdin, "
        "or type it when asked.",
    )
    add_target(register)
    register.add_argument("url", help="listener URL, e.g. https://listener.example.com/carrier")
    register.add_argument("--username", help="username ThingSpace sends back in every message (40 characters at most)")
    secret = register.add_mutually_exclusive_group()
    secret.add_argument("--password-env", metavar="VAR", help="read the listener password from this variable")
    secret.add_argument("--password-stdin", action="store_true", help="read the listener password from stdin")
    register.add_argument("--password", nargs="?", action=NoPasswordOnCommandLine, help=argparse.SUPPRESS)
    secret.add_argument(
        "--no-password", action="store_true", help="register the listener without a password (never the default)"
    )
    register.add_argument("--allow-any-port", action="store_true", help="skip the allowed-ports check")
    register.add_argument(
        "--yes",
        action="store_true",
        help="replace a listener, or register an address an audit rates high, without asking (needed without "
        "a terminal)",
    )
    add_backend(register)
    register.set_defaults(func=cmd_register)

    deregister = commands.add_parser("deregister", help="stop the messages of one service of an account")
    add_target(deregister)
    deregister.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)"
    )
    add_backend(deregister)
    deregister.set_defaults(func=cmd_deregister)
