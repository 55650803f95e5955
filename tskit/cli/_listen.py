"""``tskit listen``: its options, and running the listener in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import stat
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from tskit._stop_signals import StopRequest, stop_signals
from tskit.cli._common import UsageError
from tskit.listener import VERIZON_SOURCE_ADDRESSES, Listener, NoAuthWarning, StoreOpenError

DEFAULT_STORE = "tskit-listener/callbacks.db"

NO_AUTH_WARNING = (
    "WARNING: --no-auth: this listener stores any message from anyone who can reach it. Register the "
    "listener with a username and password and give them here (--username, --password-env) instead."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``tskit listen`` to its parser."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: the first free one ThingSpace delivers to, 28200-28220 or 9001-9006)",
    )
    parser.add_argument(
        "--store",
        default=DEFAULT_STORE,
        help=f"SQLite file for the messages; a missing folder is made 0700, files 0600 (default: {DEFAULT_STORE})",
    )
    parser.add_argument("--username", help="expected username inside each message")
    parser.add_argument("--password-env", metavar="VAR", help="variable holding the expected password")
    parser.add_argument(
        "--previous-password-env",
        metavar="VAR",
        help="variable holding the previous password, also accepted (ThingSpace sends it for minutes after a change)",
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="accept messages without checking username and password (warns)"
    )
    parser.add_argument(
        "--allow-from",
        action="append",
        default=[],
        metavar="NETWORKS",
        help="only these source addresses or networks may POST, comma-separated, repeatable; 'verizon' is "
        f"the {len(VERIZON_SOURCE_ADDRESSES)} addresses Verizon publishes (default: any source)",
    )
    parser.add_argument("--max-body", type=int, default=1024 * 1024, help="largest message in bytes (default 1 MiB)")
    parser.add_argument(
        "--header-timeout", type=float, default=10.0, help="seconds a request's headers may take (default 10)"
    )
    parser.add_argument(
        "--body-timeout", type=float, default=10.0, help="seconds a request's body may take; then 408 (default 10)"
    )
    parser.add_argument(
        "--max-connections",
        type=_number,
        default=256,
        help="connections open at once; at the limit the longest idle one is closed, else the new one alone "
        "gets 503 with Retry-After (default 256)",
    )
    parser.add_argument(
        "--keep-alive",
        type=_number,
        default=5,
        help="seconds an idle connection stays open for the next message (default 5)",
    )
    parser.add_argument(
        "--max-delay",
        type=_number,
        default=2.0,
        help="longest wait before checking a message from a source that keeps sending wrong credentials (default 2)",
    )


def _number(text: str) -> float:
    """A number given to an option; its range is the listener's to check (named as the option)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    return int(value) if value.is_integer() else value


def _secret(variable: str | None, option: str) -> str | None:
    if not variable:
        return None
    value = os.environ.get(variable)
    if value is None:
        raise UsageError(f"{option}: the variable {variable} is not set")
    if not value:
        raise UsageError(f"{option}: the variable {variable} is empty")
    return value


def _open_folder_warning(store: str) -> str:
    """A warning if the store's existing folder lets other users in (the files themselves are 0600)."""
    folder = Path(store).resolve().parent
    try:
        mode = folder.stat().st_mode
    except OSError:
        return ""
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"Note: the folder {folder} is open to other users ({stat.filemode(mode)}); the database files are 0600."
    return ""


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[None]:
    """Show the listener's log (each refused message: status, reason, peer) on stderr, from INFO.

    Each record is shown once: it does not also reach the ``tskit: warning:`` lines of the command.
    The logger is put back as it was afterwards, for ``main()`` called from Python.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("tskit.listener")
    level, propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


def _option_wording(message: str) -> str:
    """A ``Listener`` argument's error as the option's: ``max_body: ...`` reads ``--max-body: ...``."""
    name, colon, rest = message.partition(": ")
    options = {"password": "--password-env", "previous_password": "--previous-password-env"}
    if colon and name.replace("_", "").isalpha() and name.islower():
        return f"{options.get(name, '--' + name.replace('_', '-'))}: {rest}"
    return message


def run(args: argparse.Namespace) -> int:
    """Run ``tskit listen`` in the foreground until Ctrl-C."""
    password = _secret(args.password_env, "--password-env")
    previous = _secret(args.previous_password_env, "--previous-password-env")
    if args.no_auth and (password or args.username):
        raise UsageError("--no-auth cannot be combined with --username or --password-env")
    if not args.no_auth and not password:
        raise UsageError(
            "refusing to listen without credentials: give the password you register with ThingSpace in a "
            "variable (--password-env VAR, and --username), or --no-auth to accept anyone's messages"
        )
    if args.no_auth:
        print(NO_AUTH_WARNING, file=sys.stderr, flush=True)
    # from here a Ctrl-C (or SIGTERM) stops the listener even before it serves: never lost at start-up
    with _log_to_stderr(), stop_signals() as request:
        return _serve(args, password, previous, request)


def _serve(args: argparse.Namespace, password: str | None, previous: str | None, request: StopRequest) -> int:
    try:
        with warnings.catch_warnings():  # --no-auth printed its own warning above
            warnings.simplefilter("ignore", NoAuthWarning)
            listener = Listener(
                username=args.username,
                password=password,
                previous_password=previous,
                host=args.host,
                port=args.port,
                store=args.store,
                max_body=args.max_body,
                allow_from=args.allow_from,
                header_timeout=args.header_timeout,
                body_timeout=args.body_timeout,
                max_connections=args.max_connections,
                keep_alive=args.keep_alive,
                max_delay=args.max_delay,
                start=False,
            )
    except ValueError as exc:
        raise UsageError(_option_wording(str(exc))) from None
    except StoreOpenError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        where = args.host if args.port is None else f"{args.host}:{args.port}"  # None: the first free one
        raise UsageError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    try:
        _announce(args, listener, previous)
        request.raise_if_requested()
    except BaseException:  # stopped before serving: the store's writer must not keep the process up
        listener.stop()
        raise
    listener.serve_forever()
    return 0


def _announce(args: argparse.Namespace, listener: Listener, previous: str | None) -> None:
    """The start-up lines: where it listens, where it stores, whom it accepts."""
    print(f"Listening for ThingSpace callbacks on {listener.url} (one URL per service: {listener.url}/SERVICE)")
    if args.host in ("0.0.0.0", "::", "[::]"):
        print("  on every address of this machine: register the URL with its public name or address instead")
    print(f"Messages are stored in {args.store}. Ctrl-C to stop.")
    sources = ", ".join(args.allow_from) if args.allow_from else "any source (no --allow-from)"
    if any(part.strip().lower() == "verizon" for entry in args.allow_from for part in entry.split(",")):
        sources += f" (verizon: the {len(VERIZON_SOURCE_ADDRESSES)} addresses Verizon publishes)"
    print(f"Accepting messages from: {sources}")
    if not args.no_auth:
        print(f"Previous password accepted: {'yes (--previous-password-env)' if previous else 'no'}", flush=True)
    for note in (_open_folder_warning(args.store),):
        if note:
            print(note, file=sys.stderr)
    if not listener.allowed_by_thingspace:
        print(f"Note: ThingSpace does not deliver to port {listener.port}.", file=sys.stderr)
    sys.stdout.flush()  # the start-up lines show at once, even in a pipe (`| tee`)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``listen`` to the ``tskit`` command."""
    listen = commands.add_parser(
        "listen",
        help="run a callback listener that stores every ThingSpace message in SQLite",
        description="Accept ThingSpace's callback POSTs, check the username and password inside each "
        "body, store each message in SQLite before answering 200, count redeliveries once.",
    )
    add_arguments(listen)
    listen.set_defaults(func=run)
