"""The ``tskit`` command itself: its parser, and running a command with its exit code and error words."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

from tskit import ThingSpaceError, ValidationError, __version__
from tskit._extras import MissingExtraError
from tskit.cli import _audit, _callbacks, _demo, _listen, _login, _simulator, _state
from tskit.cli._common import EPILOG, NothingChanged, UsageError
from tskit.cli._login import throttle_waits_shown
from tskit.cli._words import cli_words
from tskit.ops import close_open_bars


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tskit`` command."""
    parser = argparse.ArgumentParser(
        prog="tskit",
        description="Manage the callback listeners of Verizon ThingSpace Connectivity Management accounts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tskit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # in the order `tskit --help` lists them
    _callbacks.add_commands(commands)  # list, services, register, deregister
    _audit.add_commands(commands)
    _listen.add_commands(commands)
    _login.add_commands(commands)  # reset-login
    _demo.add_commands(commands)
    _simulator.add_commands(commands)
    _state.add_commands(commands)  # export, plan, apply, rotate
    return parser


def _unknown_command(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """A did-you-mean for a mistyped command (``tskit lsit``), or ``""``."""
    first = next((a for a in argv if not a.startswith("-")), None)
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    commands = list(actions[0].choices) if actions else []
    if first is None or first in commands or argv.index(first) != 0:
        return ""
    guess = difflib.get_close_matches(first, commands, n=1, cutoff=0.6)
    hint = f"did you mean '{guess[0]}'?" if guess else f"the commands are {', '.join(commands)}"
    return f"tskit: unknown command '{first}': {hint} (tskit --help lists them)"


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


def _run(args: argparse.Namespace) -> int:
    try:
        with throttle_waits_shown():
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
    except ValidationError as error:
        print(f"tskit {args.command}: {cli_words(error, args)}", file=sys.stderr)
        return 2
    except ThingSpaceError as error:
        print(f"tskit {args.command}: {cli_words(error, args)}", file=sys.stderr)
        for note in getattr(error, "__notes__", ()):  # e.g. whether the change may have taken effect
            print(f"  {note}", file=sys.stderr)
        return 1
    return code
