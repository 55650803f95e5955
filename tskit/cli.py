"""The ``tskit`` command: list, register, deregister, audit, the simulator server, and a demo."""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import pandas as pd

    from tskit._facade import ThingSpace
    from tskit.audit import AccountError

EPILOG = """\
credentials:
  THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET, THINGSPACE_USERNAME and THINGSPACE_PASSWORD
  (and THINGSPACE_BASE_URL). With no THINGSPACE_* variable set at all, tskit uses its embedded
  ThingSpace simulator and its demo accounts 0000123456-00001, -00002 and -00003. With some set
  but not all four (or misspelt), it refuses with exit 2 rather than act on simulator data.

exit codes:
  0 done (or a confirmation answered no, or Ctrl-D at it); 1 ThingSpace or the network failed,
  or no password was typed at the password prompt (Ctrl-D); 2 bad usage or input (nothing was
  sent); 3 audit findings at or above --fail-on; 4 some accounts could not be read;
  130 interrupted (Ctrl-C); 141 the reader of the output went away (e.g. `| head`).
  tskit plan: 0 nothing would change, 2 changes pending, 1 failure (Terraform's convention).

environment:
  NO_COLOR set: no colours, even on a terminal. FORCE_COLOR set (not 0): colours, even in a pipe.
"""

EXIT_FINDINGS = 3
EXIT_UNREADABLE = 4


class UsageError(Exception):
    """A mistake on the command line, reported with exit code 2."""


# The library's options as its remedies name them ("pass allow_any_port=True", "allow_http=True"),
# said as the command at hand takes them (see _option_words).
_OPTION_WORDS = (
    (re.compile(r"\bpass (\w+)=True\b"), "add "),
    (re.compile(r"\b(allow_http|allow_partial|allow_unknown_service|include_without_credentials)=True\b"), ""),
)
# Options a desired-state file may set for itself, under [tskit] (see tskit.state).
_FILE_OPTIONS = ("allow_any_port", "allow_unknown_service")
# What the library says in Python words, and what a shell user types instead.
_CLI_WORDS = (
    (re.compile(r"one of tskit\.SERVICE_CATALOGUE"), lambda m: "one of the services `tskit services` lists"),
    (re.compile(r"tskit\.SERVICE_CATALOGUE"), lambda m: "the services `tskit services` lists"),
    (re.compile(r" and reconnect \(or call reset\(\)\)"), lambda m: ", then run `tskit reset-login`"),
    (
        re.compile(r"Check the credentials, then reconnect"),
        lambda m: "Fix the credentials; run `tskit reset-login` once they are fixed",
    ),
    (re.compile(r"Check the user name and password, then reconnect\."), lambda m: "Fix the user name and password."),
    (re.compile(r"\bcall reset\(\)"), lambda m: "run `tskit reset-login`"),
    (re.compile(r"\busername= and password="), lambda m: "--username and --password-env"),
    (re.compile(r"\bplan with prune\b"), lambda m: "plan with --prune"),
    # An API error as an HTTP status, not a Python class name.
    (re.compile(r"\bApiError (\d{3})\b"), lambda m: f"HTTP {m[1]}"),
)
# The library's field names, as the command line names them.
_FIELDS = {
    "account_name": "ACCOUNT",
    "service_name": "SERVICE",
    "url": "URL",
    "username": "--username",
    "concurrency": "--concurrency",
    "base_url": "THINGSPACE_BASE_URL",
    "new_password": "--password-env",  # only tskit rotate takes a new password
}


def cli_words(error: BaseException | str, args: argparse.Namespace | None = None) -> str:
    """An error's (or a text's) words for the command line: flags and commands instead of Python parameters.

    Args:
        error: The error or text.
        args: The command's arguments: a remedy names only an option this command has (a
            desired-state file's own option for plan and apply, e.g. ``allow_unknown_service = true``).
    """
    from tskit._errors import ValidationError

    text = str(error)
    if isinstance(error, ValidationError) and error.field in _FIELDS:
        text = _FIELDS[error.field] + text[len(error.field) :]
    for pattern, lead in _OPTION_WORDS:
        text = pattern.sub(functools.partial(_option_words, lead=lead, args=args), text)
    for pattern, words in _CLI_WORDS:
        text = pattern.sub(words, text)
    return text


def _option_words(found: re.Match[str], *, lead: str, args: argparse.Namespace | None) -> str:
    """A library option (``allow_any_port``) as the command at hand takes it: its flag, or the file's option."""
    option = found[1]
    given = vars(args) if args is not None else None
    if given is None or option in given:
        return f"{lead}--{option.replace('_', '-')}"
    if "file" in given and option in _FILE_OPTIONS:  # plan, apply: the desired-state file says it
        return f"set {option} = true under [tskit] in the file"
    return f"use {option}=True from Python (tskit {given.get('command', '')} has no such option)"


def _json(frame: pd.DataFrame) -> object:
    """Plain JSON values of a frame's rows: times as ISO text, missing values as null."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _colour_wanted(stream: object) -> bool:
    """Colours on a terminal or with FORCE_COLOR set, never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    isatty = getattr(stream, "isatty", None)
    return callable(isatty) and bool(isatty())


def _show(frame: pd.DataFrame, fmt: str = "table", limit: int | None = None) -> str:
    if fmt == "csv":
        return str(frame.to_csv(index=False))
    if fmt == "json":
        return json.dumps(_json(frame), indent=2, ensure_ascii=False) + "\n"
    if not len(frame):
        return "(none)\n"
    shown = frame if limit is None else frame.head(limit)
    left = len(frame) - len(shown)
    more = f"... {left} more {'row' if left == 1 else 'rows'} (--limit)\n" if left else ""
    return shown.to_string(index=False) + "\n" + more


def _check_credential_variables() -> bool:
    """Whether real credentials are set; ``False`` when no THINGSPACE_* variable is set at all.

    Some set but not all four (misspelt, lower case, empty, or only THINGSPACE_BASE_URL) is a
    mistake: a cron job must not quietly act on simulator data, so it is refused up front.
    """
    import difflib

    from tskit._config import BASE_URL_ENV, ENV_VARS

    known = [*ENV_VARS.values(), BASE_URL_ENV]
    present = sorted(name for name in os.environ if name.upper().startswith("THINGSPACE_"))
    if not present:
        return False
    missing = [name for name in ENV_VARS.values() if not os.environ.get(name, "").strip()]
    if not missing:
        return True
    lines = [
        f"ThingSpace credentials are incomplete: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
        "not set (or empty)."
    ]
    for name in (n for n in present if n not in known):
        guess = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)
        lines.append(f"  {name} is set{f': did you mean {guess[0]}?' if guess else ', but tskit does not read it.'}")
    lines.append(
        "  Set all four (THINGSPACE_BASE_URL is optional), or unset every THINGSPACE_* variable for the "
        "embedded simulator, or add --simulator."
    )
    raise UsageError("\n".join(lines))


EMBEDDED_NOTICE = (
    "Note: this runs on the embedded ThingSpace simulator, which keeps nothing between runs: what is "
    "changed here is gone when the command ends. For a simulator that keeps its state, run `tskit simulator` "
    "in another terminal and set the THINGSPACE_* variables it prints."
)


def _connect(args: argparse.Namespace) -> ThingSpace:
    import tskit

    timeout = getattr(args, "timeout", None) or 30.0
    if getattr(args, "simulator", False):
        return tskit.connect(simulator=True, timeout=timeout)
    if not _check_credential_variables():
        print(
            "tskit: no ThingSpace credentials found: using the embedded simulator (nothing reaches Verizon).",
            file=sys.stderr,
        )
    return tskit.connect(timeout=timeout)


def _accounts(args: argparse.Namespace) -> list[str]:
    from tskit.audit._audit import account_lines

    names = list(args.accounts)
    if args.accounts_file:
        where = "stdin" if args.accounts_file == "-" else args.accounts_file
        try:
            if args.accounts_file == "-":
                data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
                text = data.decode("utf-8-sig")
            else:
                text = Path(args.accounts_file).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise UsageError(f"cannot read the accounts file: {exc}") from None
        except UnicodeError as exc:
            raise UsageError(f"the accounts file {where} is not valid UTF-8 (byte {exc.args[2]})") from None
        from_file = account_lines(text)
        _check_lines(args.accounts_file, text.splitlines(), from_file)
        names += from_file
    if not names:
        raise UsageError("give account names, or --accounts-file FILE")
    from tskit.audit import account_list

    # every name checked before anything is sent
    return account_list(names)


def _check_lines(path: str, lines: list[str], names: list[str]) -> None:
    """Name the line of the first bad account name of an accounts file."""
    from tskit import _validate as check
    from tskit._errors import ValidationError

    for name in names:
        try:
            check.account_name(name)
        except ValidationError as error:
            number = next((n for n, line in enumerate(lines, 1) if line.split("#", 1)[0].strip() == name.strip()), None)
            where = "stdin" if path == "-" else path
            at = f", line {number}" if number else ""
            raise UsageError(f"--accounts-file {where}{at}: {error.problem} ({error.allowed})") from None


def _cmd_list(args: argparse.Namespace) -> int:
    import tskit
    from tskit._frames import concat

    names = _accounts(args)
    with _connect(args) as ts:
        frames = [ts.list_callbacks(account) for account in names]
    frame = concat(frames) if frames else tskit.callbacks_frame([])
    sys.stdout.write(_show(frame, args.format, args.limit))
    return 0


def _cmd_services(args: argparse.Namespace) -> int:
    import tskit

    frame = tskit.services_frame()
    if args.format != "table":
        sys.stdout.write(_show(frame, args.format))
        return 0
    import textwrap

    # left-aligned, descriptions wrapped under their own column: fits 100 columns
    width = max(len(name) for name in frame["service_name"]) + 2
    print(f"{'SERVICE':<{width}}WHAT IT SENDS")
    for name, description in zip(frame["service_name"], frame["description"], strict=True):
        lines = textwrap.wrap(str(description), width=100 - width) or [""]
        print(f"{name:<{width}}{lines[0]}")
        for line in lines[1:]:
            print(" " * width + line)
    return 0


class NothingChanged(Exception):
    """A prompt got no answer (Ctrl-D): nothing was sent; the exit code says which prompt."""

    def __init__(self, code: int) -> None:
        super().__init__("Nothing was changed.")
        self.code = code


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


def _confirm(question: str, *, yes: bool, flag: str = "--yes", no_terminal: str = "") -> bool:
    """Ask on a terminal; ``--yes`` answers for scripts. Ctrl-D is a no.

    Without a terminal (and without ``yes``) it raises :class:`UsageError` saying ``no_terminal``,
    or that ``flag`` is needed.
    """
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(no_terminal or f"needs {flag} when it cannot ask (no terminal)")
    try:
        answer = input(question)
    except EOFError:
        print()
        return False
    except KeyboardInterrupt:
        print()  # end the question's line (input wrote it to stdout)
        raise
    return answer.strip().lower() in ("y", "yes")


def _cmd_register(args: argparse.Namespace) -> int:
    from tskit import _validate as check

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
    with _connect(args) as ts:
        if ts.simulator is not None:
            print(EMBEDDED_NOTICE, file=sys.stderr)
        replaced = _replaced(ts, args)
        if replaced:
            print(f"tskit register: would replace {replaced}", file=sys.stderr)
        for detail in serious:
            print(f"tskit register: warning: {detail}", file=sys.stderr)
        if serious or replaced:
            what = "Replace the listener" if replaced else "Register it anyway"
            if not _confirm(f"{what} ({args.service} of {args.account} on {ts.source})? [y/N] ", yes=args.yes):
                print("Nothing was changed.")
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


_OUTCOME_NOTES = {
    "sent": "",
    "resent": " (sent again: a listing showed the first attempt had not taken effect)",
    "confirmed": " (confirmed by listing the account's callbacks)",
}


def _serious_findings(args: argparse.Namespace) -> list[str]:
    """What an audit would rate high about this registration (e.g. an address ThingSpace cannot reach)."""
    from tskit._models import Callback
    from tskit._secret import Secret
    from tskit.audit._rules import DEFAULT_RULES, AuditContext, Severity, run_rules

    callback = Callback(args.account, args.service, args.url, args.username or "", Secret(""))
    findings = run_rules(args.account, [callback], DEFAULT_RULES, AuditContext())
    skipped = {"port-not-allowed"} if args.allow_any_port else set()
    return [f.detail for f in findings if f.severity >= Severity.HIGH and f.rule not in skipped]


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


def _cmd_deregister(args: argparse.Namespace) -> int:
    from tskit import _validate as check

    check.account_name(args.account)
    check.service_name(args.service, allow_unknown=args.allow_unknown_service)
    with _connect(args) as ts:
        if ts.simulator is not None:
            print(EMBEDDED_NOTICE, file=sys.stderr)
        question = f"Deregister {args.service} of account {args.account} on {ts.source}? [y/N] "
        if not _confirm(question, yes=args.yes):
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
    from tskit import _validate as check
    from tskit._errors import ValidationError
    from tskit.audit import Audit, Severity

    expect = [s.strip() for s in ",".join(args.expect).split(",") if s.strip()]
    for service in expect:
        try:
            check.service_name(service, allow_unknown=args.allow_unknown_service)
        except ValidationError as error:
            raise UsageError(f"--expect: {cli_words(error, args).removeprefix('SERVICE: ')}") from None
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
    names = _accounts(args)
    with _connect(args) as ts:
        audit = ts.audit(names, expect, concurrency=args.concurrency, progress=False if args.no_progress else None)
        errors = audit.error_list
        if errors and len(errors) == len(audit.accounts) and all(e.error == "AuthenticationError" for e in errors):
            # Not one account was read because the login failed: say that once, not once per account.
            refused = ts.client.auth.refused
            raise tskit.ThingSpaceError(str(refused) if refused else f"the login failed: {errors[0].message}")
        if errors and len(errors) == len(audit.accounts) and len({(e.error, e.message) for e in errors}) == 1:
            # Not one account was read, all for one reason (ThingSpace unreachable, say): an error.
            raise tskit.ThingSpaceError(f"no account could be read: {errors[0].message}")
    if args.save:
        audit.save(args.save)
    changes = audit.diff(old) if old is not None else None
    if args.format == "json":
        from tskit.audit._snapshot import document

        out = document(audit)
        if changes is not None:
            out["diff"] = json.loads(changes.to_json(orient="records"))
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    elif args.format == "csv":
        sys.stdout.write(_show(changes if changes is not None else audit.findings, "csv"))
    else:
        from tskit.audit._display import text_summary

        sys.stdout.write(text_summary(audit, limit=args.limit, colour=_colour_wanted(sys.stdout), command=True) + "\n")
        if changes is not None:
            sys.stdout.write(f"\nChanges since {old.started_at:%Y-%m-%d %H:%M} UTC:\n" if old else "")
            sys.stdout.write(_show(changes, limit=args.limit))
    if audit.error_list:
        if args.format != "table":  # the table names them; csv and json keep stdout for data
            _tell_unreadable(audit.error_list)
        return EXIT_UNREADABLE
    if threshold is not None and audit.at_or_above(threshold):
        return EXIT_FINDINGS
    return 0


def _tell_unreadable(errors: Sequence[AccountError]) -> None:
    """Name on stderr each account an audit could not read, and why."""
    count = len(errors)
    print(f"tskit audit: {count} account{'' if count == 1 else 's'} could not be read:", file=sys.stderr)
    for error in errors:
        why = " ".join(str(part) for part in (error.error, error.status_code or "", error.message) if part)
        print(f"  {error.account_name}: {why}", file=sys.stderr)


def _check_save(path: str) -> None:
    """Refuse a --save name that could not be written, before any account is read."""
    from pathlib import Path

    target = Path(path)
    if target.suffix.lower() not in (".json", ".csv"):
        raise UsageError(f"--save: {path!r} must end in .json (everything) or .csv (the registrations)")
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"--save: the folder {str(folder)!r} does not exist")
    if target.is_dir():
        raise UsageError(f"--save: {path!r} is a folder; give a file name")


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
        print(f"Bad input is refused before anything is sent:\n  {cli_words(error)}\n")
    print("An audit of every demo account, expecting CarrierService:")
    from tskit.audit._display import text_summary

    print(text_summary(ts.audit(accounts, ["CarrierService"], progress=False), limit=None, command=True))
    print(DEMO_NEXT)
    return 0


DEMO_NEXT = """
What next (from a checkout, the command is .venv/bin/tskit):
  tskit --help                      every command: list, register, audit, export, plan, apply, listen, ...
  tskit services                    the callback services and what each sends
  .venv/bin/pip install -e '.[notebook]'
                                    adds the simulator server, the listener, JupyterLab and the apps; then
  tskit simulator                   a simulator that keeps its state between commands: set the
                                    THINGSPACE_* variables it prints, then run any command against it
  .venv/bin/jupyter lab notebooks/quickstart.ipynb
  For Verizon's ThingSpace, set THINGSPACE_CLIENT_ID, THINGSPACE_CLIENT_SECRET, THINGSPACE_USERNAME
  and THINGSPACE_PASSWORD: every command then works on your accounts."""


def _cmd_reset_login(args: argparse.Namespace) -> int:
    from tskit import auth
    from tskit._config import Credentials
    from tskit._config import base_url as check_base_url
    from tskit._fingerprint import config_dir

    # Only whose records: the application key and the user name. The secrets are not needed,
    # and an operator should not have to put a password in the shell for this.
    client_id, username = (os.environ.get(name, "").strip() for name in ("THINGSPACE_CLIENT_ID", "THINGSPACE_USERNAME"))
    if not client_id or not username:
        raise UsageError("set THINGSPACE_CLIENT_ID, THINGSPACE_USERNAME (and THINGSPACE_BASE_URL) of the user to reset")
    credentials = Credentials(client_id, "not-needed", username, "not-needed")
    url = check_base_url()
    try:
        failed = auth.failures(url, credentials)
    except (OSError, ValueError):  # a damaged record: forget() sets it aside and says so
        failed = None
    try:
        forgot = auth.forget(url, credentials)
    except OSError as problem:  # filelock's Timeout too: the records cannot be changed, say why in one line
        print(f"tskit reset-login: cannot change the records of logins in {config_dir()}: {problem}", file=sys.stderr)
        return 1
    if forgot:
        print(
            f"Forgot the refused or failed logins of {credentials.username} on {url}, and any throttle: the next run "
            "will try to log in."
        )
        if failed is not None:
            print(
                f"ThingSpace may still count {failed['count']} failed login(s) in a row for this user, and it locks "
                "the user at 5: make sure the password is right before the next run."
            )
    else:
        print(f"No refused or failed login, nor throttle, of {credentials.username} on {url} was on record.")
    return 0


class _NoPasswordOnCommandLine(argparse.Action):
    """``--password`` is refused: other users see command lines (``ps``, shell history)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        parser.error("passwords are never taken on the command line; use --password-env or --password-stdin")


def _unknown_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """A did-you-mean for a mistyped command (``tskit lsit``), or ``""``."""
    import difflib

    first = next((a for a in argv if not a.startswith("-")), None)
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    commands = list(actions[0].choices) if actions else []
    if first is None or first in commands or argv.index(first) != 0:
        return ""
    guess = difflib.get_close_matches(first, commands, n=1, cutoff=0.6)
    hint = f"did you mean '{guess[0]}'?" if guess else f"the commands are {', '.join(commands)}"
    return f"tskit: unknown command '{first}': {hint} (tskit --help lists them)"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
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
    parser.add_argument("-v", "--verbose", action="store_true", help="also show tskit's warnings as they happen")
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


def _add_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit",
        type=_positive,
        default=None,
        metavar="N",
        help="show at most N rows of the table (default: all); table format only, csv and json are always complete",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tskit`` command."""
    parser = argparse.ArgumentParser(
        prog="tskit",
        description="Manage the callback listeners of Verizon ThingSpace Connectivity Management accounts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from tskit._version import __version__

    parser.add_argument("--version", action="version", version=f"tskit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="list the callback listeners of accounts (passwords masked)")
    _add_accounts(listing)
    listing.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    _add_limit(listing)
    _add_backend(listing)
    listing.set_defaults(func=_cmd_list)

    services = commands.add_parser("services", help="the callback services ThingSpace has, with what each sends")
    services.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    services.set_defaults(func=_cmd_services)

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
    register.add_argument("--password", nargs="?", action=_NoPasswordOnCommandLine, help=argparse.SUPPRESS)
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
        help="check the listeners of many accounts; with --fail-on, exit 3 on findings (for cron and CI)",
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
    audit.add_argument(
        "--allow-unknown-service", action="store_true", help="accept --expect services tskit does not know"
    )
    audit.add_argument("--concurrency", type=_positive, default=16, help="accounts read at once (default 16)")
    audit.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_limit(audit)
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
        help="forget a refused login, failed logins and a throttle, so the next run tries to log in again",
        description="After ThingSpace refuses a login, tskit will not try the same credentials again from "
        "any run, and after 3 logins in a row that failed or got no usable answer it sends no more for the "
        "user (5 failed logins lock the user). Once the password is checked or the user is unlocked, this "
        "forgets both, and any throttle on record, for the user of THINGSPACE_CLIENT_ID, THINGSPACE_USERNAME and "
        "THINGSPACE_BASE_URL.",
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

    from tskit.state._cli import add_commands as add_state_commands  # export, plan, apply, rotate

    add_state_commands(commands)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The command line's arguments; a mistake is told with the usage of the command it is about."""
    args, extras = parser.parse_known_args(argv)
    command = _subparser(parser, getattr(args, "command", None))
    if extras:  # argparse would show the usage of `tskit`, not of the command given the option
        command.error(f"unrecognized arguments: {' '.join(extras)}{_flag_guess(command, extras)}")
    if getattr(args, "limit", None) is not None and getattr(args, "format", "table") != "table":
        command.error("--limit: applies to the table format only (csv and json are always complete)")
    return args


def _flag_guess(command: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """A did-you-mean for the first mistyped option (``--fromat``), as mistyped commands get; or ``""``."""
    import difflib

    flags = [flag for action in command._actions for flag in action.option_strings if flag.startswith("--")]
    hidden = {f for a in command._actions if a.help == argparse.SUPPRESS for f in a.option_strings}
    for extra in extras:
        given = extra.split("=", 1)[0]
        if not given.startswith("--"):
            continue
        guess = difflib.get_close_matches(given, [f for f in flags if f not in hidden], n=1, cutoff=0.6)
        if guess:
            return f" (did you mean {guess[0]}?)"
    return ""


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The parser of a command (``tskit`` itself when there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            found: argparse.ArgumentParser = action.choices[command]
            return found
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


class _CliLogFormat(logging.Formatter):
    """``tskit: warning: ...`` or ``tskit: error: ...``."""

    def format(self, record: logging.LogRecord) -> str:
        return f"tskit: {'error' if record.levelno >= logging.ERROR else 'warning'}: {record.getMessage()}"


@contextlib.contextmanager
def _quiet_logging(verbose: bool) -> Iterator[None]:
    """The error message says what failed; tskit's warnings show only with --verbose, its errors always.

    The logger is put back as it was afterwards, so that ``main()`` called from Python (tests,
    notebooks) leaves the caller's logging alone.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CliLogFormat())
    logger = logging.getLogger("tskit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbose else logging.ERROR)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader went away


def _whole_writes(stdout: TextIO) -> TextIO:
    """A standard output that writes everything it is given, or raises ``BrokenPipeError``.

    With ``PYTHONUNBUFFERED=1`` (common in containers) ``sys.stdout`` writes straight to the file,
    and a short write to a pipe whose reader went away silently drops the rest: a closed pipe
    then looked like success (exit 0). A buffered writer on the same descriptor keeps writing
    until all is written or the pipe is found closed.
    """
    if not isinstance(getattr(stdout, "buffer", None), io.FileIO):
        return stdout  # buffered already, or not a file (a notebook, a test's capture)
    return io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(stdout.fileno(), "w", closefd=False)),
        encoding=stdout.encoding,
        errors=stdout.errors,
        line_buffering=True,  # as unbuffered as asked, a line at a time: `tskit listen | tee` shows each
        write_through=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tskit`` command; returns the exit code."""
    stdout = sys.stdout
    sys.stdout = _whole_writes(stdout)
    try:
        return _main(argv)
    finally:
        if sys.stdout is not stdout:
            with contextlib.suppress(OSError, ValueError):  # flushed in _main; after a broken pipe: /dev/null
                sys.stdout.close()
            sys.stdout = stdout


def _main(argv: Sequence[str] | None) -> int:
    try:
        parser = build_parser()
        given = list(sys.argv[1:] if argv is None else argv)
        unknown = _unknown_command(parser, given)
        if unknown:
            print(unknown, file=sys.stderr)
            return 2
        try:
            args = _parse(parser, given)
        except SystemExit as exit_:
            # tskit plan keeps exit 2 for "changes pending": its usage errors are failures (1).
            if exit_.code == 2 and _command_of(given) == "plan":
                return 1
            raise
        if args.command is None:  # bare `tskit`: what it can do, not a usage error
            parser.print_help()
            return 0
        bad = _not_utf8(args)
        if bad:
            problem = f"{bad}: is not valid UTF-8 text (check the terminal's encoding)"
            print(f"tskit {args.command}: {problem}", file=sys.stderr)
            return 1 if args.command == "plan" else 2
        with _quiet_logging(getattr(args, "verbose", False)):
            code = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's shutdown
        return code
    except KeyboardInterrupt:  # Ctrl-C: stop quietly, with the shell's code for SIGINT
        from tskit.audit._progress import close_open_bars

        with contextlib.suppress(OSError, ValueError):  # end the line a progress bar was drawing (prompts end theirs)
            close_open_bars()
        return 130
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly; what is left, and the flush at the
        # interpreter's exit, go to /dev/null
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE


#: Seconds of a throttle's wait from which it is shown even when stderr is not a terminal: a cron
#: log then says why the run took longer. On a terminal every wait is shown.
LONG_WAIT = 10.0


@contextlib.contextmanager
def _throttle_waits_shown() -> Iterator[None]:
    """Say on stderr when a call waits out ThingSpace's throttle (on a terminal, or when the wait is long)."""
    from tskit import auth

    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced
        terminal = False

    def show(wait: auth.ThrottleWait) -> None:
        if terminal or wait.seconds >= LONG_WAIT:
            print(
                f"tskit: ThingSpace asked to wait {wait.seconds:.0f} s before the next login of {wait.username!r}; "
                "waiting…",
                file=sys.stderr,
                flush=True,
            )

    auth.add_wait_listener(show)
    try:
        yield
    finally:
        auth.remove_wait_listener(show)


def _run(args: argparse.Namespace) -> int:
    import tskit
    from tskit._extras import MissingExtraError

    try:
        with _throttle_waits_shown():
            code: int = args.func(args)
    except UsageError as error:
        print(f"tskit {args.command}: {error}", file=sys.stderr)
        return 2
    except NothingChanged as stop:
        print(str(stop), file=sys.stderr)
        return stop.code
    except MissingExtraError as error:
        print(f"tskit {args.command}: {error}", file=sys.stderr)
        return 2
    except tskit.ValidationError as error:
        print(f"tskit {args.command}: {cli_words(error, args)}", file=sys.stderr)
        return 2
    except tskit.ThingSpaceError as error:
        print(f"tskit {args.command}: {cli_words(error, args)}", file=sys.stderr)
        for note in getattr(error, "__notes__", ()):  # e.g. whether the change may have taken effect
            print(f"  {note}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
