"""The login side of the command: ``tskit reset-login``, and saying when a login waits out a throttle."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from tskit import Credentials, auth
from tskit._config import base_url as check_base_url
from tskit._fingerprint import config_dir
from tskit.cli._common import UsageError

#: Seconds of a throttle's wait from which it is shown even when stderr is not a terminal: a cron
#: log then says why the run took longer. On a terminal every wait is shown.
LONG_WAIT = 10.0


@contextlib.contextmanager
def throttle_waits_shown() -> Iterator[None]:
    """Say on stderr when a call waits out ThingSpace's throttle (on a terminal, or when the wait is long)."""
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


def cmd_reset_login(args: argparse.Namespace) -> int:
    """Forget the refused or failed logins, and any throttle, of the user the THINGSPACE_* variables name."""
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


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``reset-login`` to the ``tskit`` command."""
    reset = commands.add_parser(
        "reset-login",
        help="forget a refused login, failed logins and a throttle, so the next run tries to log in again",
        description="After ThingSpace refuses a login, tskit will not try the same credentials again from "
        "any run, and after 3 logins in a row that failed or got no usable answer it sends no more for the "
        "user (5 failed logins lock the user). Once the password is checked or the user is unlocked, this "
        "forgets both, and any throttle on record, for the user of THINGSPACE_CLIENT_ID, THINGSPACE_USERNAME and "
        "THINGSPACE_BASE_URL.",
    )
    reset.set_defaults(func=cmd_reset_login)
