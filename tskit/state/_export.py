"""Export: what ThingSpace holds now, as a desired state with password references, never passwords."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tskit import _validate as check
from tskit._client import ThingSpaceClient
from tskit._errors import ThingSpaceError, ValidationError
from tskit._fingerprint import fingerprint, key_id, load_key
from tskit._models import SERVICE_CATALOGUE
from tskit.audit import AccountError, account_list, read_accounts
from tskit.state._model import DesiredCallback, DesiredState


class ExportError(ThingSpaceError):
    """Some accounts could not be read, so an export would be incomplete.

    Attributes:
        errors: The accounts that could not be read, and why.
    """

    def __init__(self, errors: list[AccountError]) -> None:
        self.errors = errors
        names = ", ".join(e.account_name for e in errors[:5]) + (" ..." if len(errors) > 5 else "")
        super().__init__(f"{len(errors)} accounts could not be read: {names}")


async def export_state(
    client: ThingSpaceClient,
    accounts: Iterable[str] | str,
    *,
    concurrency: int = 16,
    progress: bool | None = None,
    fingerprint_key: bytes | str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> DesiredState:
    """Read the accounts and return what they hold as a desired state.

    Each password becomes a fingerprint reference ("keep the password it has"), so planning
    the export against the same accounts finds nothing to change.

    Raises:
        ExportError: Some accounts could not be read (nothing is returned: a partial export
            applied with ``prune`` would delete what could not be seen).
    """
    names = account_list(accounts)
    key = load_key(fingerprint_key)
    found, failed = await read_accounts(
        client, names, concurrency=concurrency, progress=progress, description="Exporting", on_progress=on_progress
    )
    if failed:
        errors = [AccountError.from_exception(n, failed[n]) for n in names if n in failed]
        error = ExportError(errors)
        first: ThingSpaceError = failed[errors[0].account_name]
        raise error from first
    state: dict[str, dict[str, DesiredCallback]] = {}
    unknown = other_port = False
    for name in names:
        state[name] = {}
        for cb in found[name]:
            print_ = fingerprint(key, name, cb.service_name, cb.password.reveal())
            unknown = unknown or cb.service_name not in SERVICE_CATALOGUE
            other_port = other_port or not _port_allowed(cb.url)
            state[name][cb.service_name] = DesiredCallback(cb.url, cb.username, fingerprint=print_ or None)
    # What ThingSpace holds is what it accepted: the export relaxes the checks it would fail.
    return DesiredState(
        state, source="export", key_id=key_id(key), allow_any_port=other_port, allow_unknown_service=unknown
    )


def _port_allowed(url: str) -> bool:
    try:
        check.listener_url(url)
    except ValidationError:
        return False
    return True
