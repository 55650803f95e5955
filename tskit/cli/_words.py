"""The library's words as the command line says them: flags and commands instead of Python parameters."""

from __future__ import annotations

import argparse
import functools
import re

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
