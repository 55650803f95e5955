"""Password rotation: every listener of some accounts moved to a new password, verified by fingerprint."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

from tskit import _validate as check
from tskit._errors import ValidationError
from tskit._fingerprint import fingerprint, load_key
from tskit._secret import Secret
from tskit.audit import AccountError, account_list, read_accounts
from tskit.state._apply import ApplyResult, apply_plan
from tskit.state._journal import Journal
from tskit.state._model import DesiredCallback, DesiredState
from tskit.state._plan import compute_plan

if TYPE_CHECKING:
    import pandas as pd

    from tskit._client import ThingSpaceClient
    from tskit.listener import Listener

REMAINING_COLUMNS: Final = ("account_name", "service_name", "reason")


class RotationResult(ApplyResult):
    """An apply result, plus the listeners still on another password after the rotation.

    Attributes:
        remaining_list: ``(account, service, reason)`` of every listener not verified on the new
            password (an unreadable account is listed with service ``""``).
    """

    def __init__(self, result: ApplyResult, remaining: list[tuple[str, str, str]]) -> None:
        super().__init__(result.plan, result.outcome_list, result.journal, result.resumed)
        self.remaining_list = remaining

    @property
    def remaining(self) -> pd.DataFrame:
        """One row per listener still on the old password: account_name, service_name, reason."""
        from tskit._frames import frame

        return frame(self.remaining_list, REMAINING_COLUMNS)

    @property
    def ok(self) -> bool:
        """Whether every listener was verified on the new password."""
        return not self.remaining_list

    def summary(self) -> str:
        """How many listeners are still on another password."""
        count = len(self.remaining_list)
        return f"; {count} {'listener' if count == 1 else 'listeners'} still on another password"

    def __repr__(self) -> str:
        from tskit.state._display import _safe

        lines = [super().__repr__()]
        lines += [_safe(f"  {a} {s or '(account)'}: {r}") for a, s, r in self.remaining_list[:20]]
        return "\n".join(lines)


async def rotate(
    client: ThingSpaceClient,
    accounts: Iterable[str] | str,
    *,
    new_password: str | Secret,
    services: Iterable[str] | None = None,
    listener: Listener | None = None,
    concurrency: int = 8,
    journal: str | os.PathLike[str] | Journal | None = None,
    progress: bool | None = None,
    fingerprint_key: bytes | str | None = None,
    source: str = "",
    on_progress: Callable[[int, int], None] | None = None,
) -> RotationResult:
    """Move every listener of the accounts (or of the given services) to ``new_password``."""
    names = account_list(accounts)
    secret = Secret(check.credential("new_password", new_password))
    if not secret:
        raise ValidationError("new_password", "is empty", "1 to 40 characters")
    wanted = None if services is None else {check.service_name(s, allow_unknown=True) for s in services}
    key = load_key(fingerprint_key)
    if listener is not None:
        # The listener must take the new password before ThingSpace sends it, and keep taking the
        # old one for the minutes ThingSpace goes on sending it.
        listener.rotate_password(secret.reveal())
    found, failed = await read_accounts(
        client, names, concurrency=concurrency, progress=progress, description="Reading", on_progress=None
    )
    state = DesiredState(
        {
            name: {
                cb.service_name: DesiredCallback(cb.url, cb.username, secret)
                for cb in found[name]
                if wanted is None or cb.service_name in wanted
            }
            for name in names
            if name in found
        },
        source="rotation",
        allow_any_port=True,
        allow_unknown_service=True,
    )
    plan = compute_plan(client, state, found, failed, key=key, prune=False, source=source or client.base_url)
    result = await apply_plan(
        plan, concurrency=concurrency, journal=journal, progress=progress, on_progress=on_progress
    )
    # Verify by reading again: a listener is rotated when its password's fingerprint is the new one's.
    after, unread = await read_accounts(client, names, concurrency=concurrency, progress=False)
    remaining: list[tuple[str, str, str]] = []
    for name in names:
        if name in failed or name in unread:
            error = AccountError.from_exception(name, failed.get(name) or unread[name])
            remaining.append((name, "", f"could not be read: {error.error} {error.message}".strip()))
            continue
        for cb in after[name]:
            if wanted is not None and cb.service_name not in wanted:
                continue
            if fingerprint(key, name, cb.service_name, cb.password.reveal()) != fingerprint(
                key, name, cb.service_name, secret.reveal()
            ):
                remaining.append((name, cb.service_name, "still on another password"))
    return RotationResult(result, remaining)
