"""The ``tskit`` command: list, register, deregister, audit, the simulator server, and a demo."""

from __future__ import annotations

import argparse
import contextlib
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
  tskit plan: 0 nothing would change, 2 changes pending, 1 failure (Terraform's convention).
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

    return tskit.connect(
        simulator=True if getattr(args, "simulator", False) else None, timeout=getattr(args, "timeout", None) or 30.0
    )


def _accounts(args: argparse.Namespace) -> list[str]:
    from tskit.audit._audit import account_lines, read_accounts_file

    names = list(args.accounts)
    if args.accounts_file:
        try:
            if args.accounts_file == "-":
                data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
                names += account_lines(data.decode("utf-8-sig"))
            else:
                names += read_accounts_file(args.accounts_file)
        except OSError as exc:
            raise UsageError(f"cannot read the accounts file: {exc}") from None
        except UnicodeError as exc:
            where = "(stdin)" if args.accounts_file == "-" else args.accounts_file
            raise UsageError(f"the accounts file {where} is not valid UTF-8 (byte {exc.args[2]})") from None
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
    print(f"Registered {result.service_name} for {result.account_name}{_OUTCOME_NOTES[result.outcome]}")
    if result.url and result.url != args.url:
        print(f"Registered as {result.url}")
    return 0


_OUTCOME_NOTES = {
    "sent": "",
    "resent": " (sent again: a listing showed the first attempt had not taken effect)",
    "confirmed": " (confirmed by listing the account's callbacks)",
}


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
    if result.was_registered is False:
        print(f"{result.service_name} of {result.account_name} had no listener: nothing to deregister")
        return 0
    print(f"Deregistered {result.service_name} for {result.account_name}{_OUTCOME_NOTES[result.outcome]}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    import tskit
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
        errors = audit.error_list
        if errors and len(errors) == len(audit.accounts) and all(e.error == "AuthenticationError" for e in errors):
            # Not one account was read because the login failed: say that once, not once per account.
            refused = ts.client.auth.refused
            raise tskit.ThingSpaceError(str(refused) if refused else f"the login failed: {errors[0].error_code}")
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


def _cmd_listen(args: argparse.Namespace) -> int:
    from tskit.listener import Listener

    password = os.environ.get(args.password_env) if args.password_env else None
    if args.password_env and password is None:
        raise UsageError(f"--password-env: the variable {args.password_env} is not set")
    try:
        listener = Listener(
            username=args.username,
            password=password,
            host=args.host,
            port=args.port,
            store=args.store,
            max_body=args.max_body,
            start=False,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    print(f"Listening for ThingSpace callbacks on {listener.url} (one URL per service: {listener.url}/SERVICE)")
    print(f"Messages are stored in {args.store}. Ctrl-C to stop.", flush=True)
    if not listener.allowed_by_thingspace:
        print(f"Note: ThingSpace does not deliver to port {listener.port}.", file=sys.stderr)
    listener.serve_forever()
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


def _cmd_simulator(args: argparse.Namespace) -> int:
    from tskit.simulator import Faults, Simulator, SimulatorConfig, SimulatorServer, seed_fleet

    config = SimulatorConfig(
        reregister=args.reregister,
        deregister_missing=args.deregister_missing,
        empty_list=args.empty_list,
        enforce_listener_ports=not args.any_port,
    )
    faults = Faults(
        latency=args.latency,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        drop_rate=args.drop_rate,
        seed=args.seed,
    )
    simulator = Simulator(config, faults=faults, demo=not args.no_demo)
    if args.fleet:
        seed_fleet(simulator, args.fleet)
    server = SimulatorServer(simulator, host=args.host, port=args.port)
    server.bind()
    print("# Point tskit, or any ThingSpace client, at this simulator:")
    print(server.export_lines(), flush=True)
    print(f"ThingSpace simulator serving on {server.base_url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


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
    parser.add_argument(
        "--timeout", type=_seconds, default=30.0, help="seconds each call may take, login and retries included (30)"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


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
    listen.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    listen.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: the first free one ThingSpace delivers to, 28200-28220 or 9001-9006)",
    )
    listen.add_argument("--store", default="callbacks.db", help="SQLite file for the messages (default: callbacks.db)")
    listen.add_argument("--username", help="expected username inside each message")
    listen.add_argument("--password-env", metavar="VAR", help="variable holding the expected password")
    listen.add_argument("--max-body", type=int, default=1024 * 1024, help="largest message in bytes (default 1 MiB)")
    listen.set_defaults(func=_cmd_listen)

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
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sim.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    sim.add_argument("--no-demo", action="store_true", help="start empty, without the demo accounts")
    sim.add_argument(
        "--fleet",
        type=int,
        default=0,
        metavar="N",
        help="add N generated accounts 7000000000-00001, 7000000001-00001, ... for audits",
    )
    sim.add_argument(
        "--reregister",
        choices=["replace", "error"],
        default="replace",
        help="registering a service that has a listener: replace it, or answer 400",
    )
    sim.add_argument(
        "--deregister-missing",
        choices=["error", "ok"],
        default="error",
        help="deregistering a service with no listener: answer 400, or 200",
    )
    sim.add_argument(
        "--empty-list",
        choices=["empty-body", "json-array"],
        default="empty-body",
        help="an account with no callbacks lists as an empty body (Verizon's docs) or []",
    )
    sim.add_argument("--any-port", action="store_true", help="accept listener URLs on any port")
    sim.add_argument("--latency", type=float, default=0.0, help="seconds added before every answer")
    sim.add_argument("--error-rate", type=_rate, default=0.0, help="share of callbacks calls answered 500")
    sim.add_argument("--rate-limit-rate", type=_rate, default=0.0, help="share answered 429 with Retry-After")
    sim.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds of those 429s")
    sim.add_argument("--drop-rate", type=_rate, default=0.0, help="share of connections dropped unanswered")
    sim.add_argument("--seed", type=int, default=None, help="seed for the fault draws")
    sim.set_defaults(func=_cmd_simulator)

    from tskit.state._cli import add_commands as add_state_commands  # export, plan, apply, rotate

    add_state_commands(commands)
    return parser


def _command_of(argv: Sequence[str]) -> str:
    """The subcommand named on a command line (the first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), "")


def _not_utf8(args: argparse.Namespace) -> str:
    """The name of the first argument whose bytes were not UTF-8 (Python keeps them as lone surrogates)."""
    for name, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and any("\ud800" <= char <= "\udfff" for char in text):
                return name
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tskit`` command; returns the exit code."""
    import tskit

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        # tskit plan keeps exit 2 for "changes pending": its usage errors are failures (1).
        if exit_.code == 2 and _command_of(sys.argv[1:] if argv is None else argv) == "plan":
            return 1
        raise
    bad = _not_utf8(args)
    if bad:
        print(f"tskit {args.command}: {bad}: is not valid UTF-8 text (check the terminal's encoding)", file=sys.stderr)
        return 2
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
        for note in getattr(error, "__notes__", ()):  # e.g. whether the change may have taken effect
            print(f"  {note}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tskit {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
