"""The options several commands take, and the types that check their values."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """A whole number of 1 or more (``--limit``, ``--concurrency``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def seconds(text: str) -> float:
    """A number of seconds above 0 (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def add_accounts(parser: argparse.ArgumentParser) -> None:
    """The accounts a command reads: names, and ``--accounts-file``."""
    parser.add_argument("accounts", nargs="*", metavar="ACCOUNT", help="account name, e.g. 0000123456-00001")
    parser.add_argument(
        "--accounts-file",
        metavar="FILE",
        help="more account names, one per line ('#' starts a comment; '-' reads stdin)",
    )


def add_target(parser: argparse.ArgumentParser) -> None:
    """The account and service a register or deregister is about."""
    parser.add_argument("account", help="account name, e.g. 0000123456-00001")
    parser.add_argument("service", help="callback service, e.g. CarrierService")
    parser.add_argument("--allow-unknown-service", action="store_true", help="accept a service tskit does not know")


def add_backend(parser: argparse.ArgumentParser) -> None:
    """Where a command connects (``--simulator``), how long a call may take, and ``--verbose``."""
    parser.add_argument(
        "--simulator", action="store_true", help="use the embedded simulator even when credentials are set"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also show tskit's warnings as they happen")
    parser.add_argument(
        "--timeout", type=seconds, default=30.0, help="seconds each call may take, login and retries included (30)"
    )


def add_limit(parser: argparse.ArgumentParser) -> None:
    """``--limit N``: the rows a table shows."""
    parser.add_argument(
        "--limit",
        type=positive,
        default=None,
        metavar="N",
        help="show at most N rows of the table (default: all); table format only, csv and json are always complete",
    )


def add_format(parser: argparse.ArgumentParser, help: str = "output format") -> None:
    """``--format``: table, csv or json."""
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table", help=help)


class NoPasswordOnCommandLine(argparse.Action):
    """``--password`` is refused: other users see command lines (``ps``, shell history)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        parser.error("passwords are never taken on the command line; use --password-env or --password-stdin")
