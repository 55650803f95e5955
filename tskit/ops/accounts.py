"""Account lists: names checked and de-duplicated, read from text or a file; a fan-out's concurrency checked."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tskit import _validate as check
from tskit._errors import ValidationError


def account_list(accounts: Iterable[str] | str) -> list[str]:
    """Check and de-duplicate account names (order kept); all bad names are named at once."""
    if isinstance(accounts, str):
        accounts = [accounts]
    names: dict[str, None] = {}  # a dict keeps the order and finds a repeat at once, even among 10,000
    bad: list[str] = []
    for entry in accounts:
        try:
            name = check.account_name(entry)
        except ValidationError:
            bad.append(repr(entry))
            continue
        names.setdefault(name)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValidationError(
            "accounts",
            f"{len(bad)} not account names: {shown}",
            "letters, digits, '-', '_' or '.', e.g. 0000123456-00001",
        )
    if not names:
        raise ValidationError("accounts", "no account names given", "one or more, e.g. 0000123456-00001")
    return list(names)


def read_accounts_file(path: str | Path) -> list[str]:
    """Account names from a UTF-8 text file: one per line; blank lines, ``#`` comments and a BOM are skipped.

    Raises:
        UnicodeDecodeError: The file is not UTF-8.
    """
    return account_lines(Path(path).read_text(encoding="utf-8-sig"))


def account_lines(text: str) -> list[str]:
    """Account names from text: one per line; blank lines and ``#`` comments are skipped."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def check_concurrency(concurrency: int) -> int:
    """Check a fan-out's concurrency: 1 to 256 calls at once."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
        raise ValidationError("concurrency", f"{concurrency!r} is out of range", "a whole number from 1 to 256")
    return concurrency
