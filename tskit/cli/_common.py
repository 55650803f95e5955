"""What every command shares: exit codes, the errors it stops with, connecting, account lists, questions."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path

import tskit
from tskit import ThingSpace, ValidationError
from tskit import _validate as check
from tskit._config import BASE_URL_ENV, ENV_VARS
from tskit.ops import account_lines, account_list

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

EMBEDDED_NOTICE = (
    "Note: this runs on the embedded ThingSpace simulator, which keeps nothing between runs: what is "
    "changed here is gone when the command ends. For a simulator that keeps its state, run `tskit simulator` "
    "in another terminal and set the THINGSPACE_* variables it prints."
)


class UsageError(Exception):
    """A mistake on the command line, reported with exit code 2."""


class NothingChanged(Exception):
    """A prompt got no answer (Ctrl-D): nothing was sent; the exit code says which prompt."""

    def __init__(self, code: int) -> None:
        super().__init__("Nothing was changed.")
        self.code = code


def check_credential_variables() -> bool:
    """Whether real credentials are set; ``False`` when no THINGSPACE_* variable is set at all.

    Some set but not all four (misspelt, lower case, empty, or only THINGSPACE_BASE_URL) is a
    mistake: a cron job must not quietly act on simulator data, so it is refused up front.
    """
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


def connect(args: argparse.Namespace) -> ThingSpace:
    """The connection a command works on: --simulator, the THINGSPACE_* variables, or the embedded simulator.

    Commands call it as ``_common.connect``, so that a test can put another connection in its place.
    """
    timeout = getattr(args, "timeout", None) or 30.0
    # tskit.connect looked up at each call, as a user's code would call it
    if getattr(args, "simulator", False):
        return tskit.connect(simulator=True, timeout=timeout)
    if not check_credential_variables():
        print(
            "tskit: no ThingSpace credentials found: using the embedded simulator (nothing reaches Verizon).",
            file=sys.stderr,
        )
    return tskit.connect(timeout=timeout)


def connect_to_change(args: argparse.Namespace) -> ThingSpace:
    """The connection of a command that changes listeners: said when it is the embedded simulator."""
    ts = connect(args)
    if ts.simulator is not None:
        print(EMBEDDED_NOTICE, file=sys.stderr)
    return ts


def accounts(args: argparse.Namespace) -> list[str]:
    """The accounts named on the command line and in --accounts-file, every name checked before anything is sent."""
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
    # every name checked before anything is sent
    return account_list(names)


def _check_lines(path: str, lines: list[str], names: list[str]) -> None:
    """Name the line of the first bad account name of an accounts file."""
    for name in names:
        try:
            check.account_name(name)
        except ValidationError as error:
            number = next((n for n, line in enumerate(lines, 1) if line.split("#", 1)[0].strip() == name.strip()), None)
            where = "stdin" if path == "-" else path
            at = f", line {number}" if number else ""
            raise UsageError(f"--accounts-file {where}{at}: {error.problem} ({error.allowed})") from None


def confirm(question: str, *, yes: bool, flag: str = "--yes", no_terminal: str = "") -> bool:
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


def declined(question: str, *, yes: bool, no_terminal: str = "") -> bool:
    """Ask as :func:`confirm` does; on a no, say on stdout that nothing was changed (the command exits 0)."""
    if confirm(question, yes=yes, no_terminal=no_terminal):
        return False
    print("Nothing was changed.")
    return True
