"""Errors in the command line's words: rendered from their fields (reason, field, remedy), never re-read."""

from __future__ import annotations

import argparse

from tskit._errors import ThingSpaceError, Vocabulary

# Options a desired-state file may set for itself, under [tskit] (see tskit.state).
_FILE_OPTIONS = ("allow_any_port", "allow_unknown_service")
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
# Remedies in a shell user's words: commands and flags instead of Python calls.
_ACTIONS = {
    "set-variable": "set {option}",
    "choose-from": "one of {choices}",
    "reset-login": "fix the credentials; run `tskit reset-login` once they are fixed",
    "unlock-user": "have Verizon support unlock the user, then run `tskit reset-login`",
    "clear-failed-logins": "fix the user name and password, then run `tskit reset-login` (a user ThingSpace "
    "already locked needs Verizon support first)",
    "fix-credentials": "fix the user name and password",
    "fix-app-credentials": "fix THINGSPACE_CLIENT_ID and THINGSPACE_CLIENT_SECRET",
    "listener-credentials": "pass them as --username and --password-env",
    "wait": "wait {seconds} s",
    "longer-timeout": "allow a longer --timeout",
    "plan-again": "run `tskit plan` again",
    "new-journal": "start a new journal (--journal)",
    "run-again": "run again later",
}
_LISTS = {"services": "the services `tskit services` lists"}


def cli_vocabulary(args: argparse.Namespace | None = None) -> Vocabulary:
    """The command line's words; with ``args``, a remedy names only an option the command at hand has."""
    given = vars(args) if args is not None else None

    def option(name: str, value: str) -> str:
        if given is None or name in given:
            return f"add --{name.replace('_', '-')}" if value == "True" else f"add --{name.replace('_', '-')} {value}"
        if "file" in given and name in _FILE_OPTIONS:  # plan, apply: the desired-state file says it
            return f"set {name} = {value.lower()} under [tskit] in the file"
        return f"use {name}={value} from Python (tskit {given.get('command', '')} has no such option)"

    return Vocabulary(fields=_FIELDS, option=option, actions=_ACTIONS, lists=_LISTS)


def cli_words(error: BaseException | str, args: argparse.Namespace | None = None) -> str:
    """An error in the command line's words: flags and commands instead of Python parameters.

    A tskit error is rendered from its fields; any other error, or a text, is shown as it is (texts
    meant for the command line are written in its words where they are made).

    Args:
        error: The error or text.
        args: The command's arguments: a remedy names only an option this command has (a
            desired-state file's own option for plan and apply, e.g. ``allow_unknown_service = true``).
    """
    if isinstance(error, ThingSpaceError):
        return error.render(cli_vocabulary(args))
    return str(error)
