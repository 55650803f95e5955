"""Export: what ThingSpace holds now, as a desired state with password references, never passwords."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

from tskit import _validate as check
from tskit._client import ThingSpaceClient
from tskit._errors import PYTHON_WORDS, Reason, Remedy, ThingSpaceError, ValidationError, Vocabulary
from tskit._fingerprint import fingerprint, key_id, load_key
from tskit._models import SERVICE_CATALOGUE
from tskit.ops import AccountError, account_list, read_accounts
from tskit.state._model import DesiredCallback, DesiredState


def unread_text(errors: list[AccountError], limit: int = 20) -> str:
    """One line per account that could not be read, with why."""
    lines = [
        "  " + " ".join(str(p) for p in (f"{e.account_name}:", *_kind(e), e.error_code, e.message) if p)
        for e in errors[:limit]
    ]
    if len(errors) > limit:
        lines.append(f"  ... {len(errors) - limit} more")
    return "\n".join(lines)


def _kind(error: AccountError) -> tuple[object, ...]:
    """What failed: an answer's HTTP status (a plain API error by its status alone), else the error's kind."""
    if error.status_code is None:
        return (error.error,)
    return ("HTTP", error.status_code) if error.error == "ApiError" else (error.error, error.status_code)


class ExportError(ThingSpaceError):
    """Some accounts could not be read, so an export would be incomplete (``"accounts-unread"``).

    Attributes:
        errors: The accounts that could not be read, and why.
    """

    reason: str = Reason.ACCOUNTS_UNREAD

    def __init__(self, errors: list[AccountError]) -> None:
        self.errors = errors
        self.remedy = Remedy("set-option", option="allow_partial", value="True")
        super().__init__(self.render())

    def render(self, words: Vocabulary = PYTHON_WORDS) -> str:
        """How many accounts could not be read, what to do, and why each failed."""
        count = len(self.errors)
        remedy = words.remedy_words(self.remedy) if self.remedy is not None else ""
        return (
            f"{count} account{' ' if count == 1 else 's '}could not be read (nothing was exported"
            f"{'; ' + remedy if remedy else ''}):\n{unread_text(self.errors)}"
        )


class PartialExportWarning(UserWarning):
    """Some accounts could not be read: the export holds the others only."""


async def export_state(
    client: ThingSpaceClient,
    accounts: Iterable[str] | str,
    *,
    concurrency: int = 16,
    progress: bool | None = None,
    fingerprint_key: bytes | str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    allow_partial: bool = False,
) -> DesiredState:
    """Read the accounts and return what they hold as a desired state.

    Each password becomes a fingerprint reference ("keep the password it has"), so planning
    the export against the same accounts finds nothing to change. Each account is listed until
    two listings in a row agree (:meth:`ThingSpaceClient.listing <tskit.ThingSpaceClient.listing>`):
    an account whose listings stay uncertain is never written, least of all as empty; it is
    among the accounts that could not be read (``UncertainListingError`` with its reason). Reads
    that fail for a passing reason (5xx, 429, a dropped connection) are tried again.

    Args:
        client: The client to read with.
        accounts: The accounts to export.
        concurrency: Most accounts read at once.
        progress: Show a progress bar: ``None`` in Jupyter or a terminal only.
        fingerprint_key: Key of the password fingerprints.
        on_progress: Called with ``(done, total)`` after each account.
        allow_partial: Export the accounts that could be read, warn
            (:class:`PartialExportWarning`) and list the others in ``state.unread``.

    Raises:
        ExportError: Some accounts could not be read, each listed with why. By default nothing
            is returned: a file that silently lacks accounts is not "what you have".
    """
    names = account_list(accounts)
    key = load_key(fingerprint_key)
    # Every account is confirmed by three listings in a row that agree: an answer lacking a listener would be written as
    # "this account has none", and applying the file with prune would delete it.
    found, failed = await read_accounts(
        client,
        names,
        concurrency=concurrency,
        progress=progress,
        description="Exporting",
        on_progress=on_progress,
        confirm_all=True,
        read_again=True,
    )
    errors = [AccountError.from_exception(n, failed[n]) for n in names if n in failed]
    if errors and not allow_partial:
        raise ExportError(errors) from failed[errors[0].account_name]
    if errors:
        count = len(errors)
        warnings.warn(
            f"{count} account{' ' if count == 1 else 's '}could not be read and {'is' if count == 1 else 'are'} "
            f"not in the export:\n{unread_text(errors)}",
            PartialExportWarning,
            stacklevel=2,
        )
    state: dict[str, dict[str, DesiredCallback]] = {}
    unknown = other_port = False
    for name in names:
        if name not in found:
            continue
        state[name] = {}
        for cb in found[name].callbacks:
            print_ = fingerprint(key, name, cb.service_name, cb.password.reveal())
            unknown = unknown or cb.service_name not in SERVICE_CATALOGUE
            other_port = other_port or not _port_allowed(cb.url)
            state[name][cb.service_name] = DesiredCallback(cb.url, cb.username, fingerprint=print_ or None)
    # What ThingSpace holds is what it accepted: the export relaxes the checks it would fail.
    exported = DesiredState(
        state, source="export", key_id=key_id(key), allow_any_port=other_port, allow_unknown_service=unknown
    )
    exported.unread = errors
    return exported


def _port_allowed(url: str) -> bool:
    try:
        check.listener_url(url)
    except ValidationError:
        return False
    return True
