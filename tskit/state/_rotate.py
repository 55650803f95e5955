"""Password rotation: every listener of some accounts moved to a new password, verified by fingerprint."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from tskit import _validate as check
from tskit._addresses import is_loopback_host
from tskit._errors import Reason, Remedy, ThingSpaceError, ValidationError
from tskit._fingerprint import fingerprint, load_key
from tskit._frames import frame
from tskit._secret import Secret
from tskit.ops import AccountError, account_list, read_accounts
from tskit.state._apply import ApplyResult, apply_plan, reconcile
from tskit.state._display import _safe, result_text
from tskit.state._journal import Journal, default_path
from tskit.state._lock import LOCK_WAIT, AccountLocks
from tskit.state._model import DesiredCallback, DesiredState
from tskit.state._plan import as_desired, compute_plan

if TYPE_CHECKING:
    import pandas as pd

    from tskit._client import ThingSpaceClient
    from tskit._models import Callback
    from tskit.listener import Listener

REMAINING_COLUMNS: Final = ("account_name", "service_name", "reason")


class RotationDeclined(ThingSpaceError):
    """The ``confirm`` of a rotation answered no, once the listeners to move were known: nothing was sent.

    Attributes:
        reason: ``"declined"``.
        listeners: How many listeners would have moved.
    """

    reason: str = Reason.DECLINED

    def __init__(self, listeners: int) -> None:
        super().__init__(f"the rotation of {listeners} listener(s) was declined: nothing was sent")
        self.listeners = listeners


class RotationResult(ApplyResult):
    """An apply result, plus the listeners still on another password after the rotation.

    Attributes:
        remaining_list: ``(account, service, reason)`` of every listener not verified on the new
            password (an unreadable account is listed with service ``""``).
    """

    def __init__(
        self,
        result: ApplyResult,
        remaining: list[tuple[str, str, str]],
        *,
        matched: int,
        skipped: int = 0,
        references: tuple[list[str], int] = ([], 0),
        desired_source: str | None = None,
    ) -> None:
        super().__init__(result.plan, result.outcome_list, result.journal, result.resumed, result.apply_id)
        self.remaining_list = remaining
        self.matched = matched
        self.skipped = skipped
        self.variables, self.fingerprinted = list(references[0]), references[1]
        self.desired_source = desired_source

    @property
    def next_step(self) -> str:
        """What to update so that a desired state does not put the old password back."""
        if not self.matched:
            return ""
        steps = []
        if self.variables:
            steps.append(
                f"Now set {', '.join(self.variables)} (named by {self.desired_source}) to the new password: until "
                "then, plan shows a password change and apply would put the old password back."
            )
        if self.fingerprinted:
            steps.append(
                f"{self.desired_source} keeps {self.fingerprinted} of these passwords by fingerprint, which no "
                'longer matches: export again, or write password = { env = "VARIABLE" } holding the new one.'
            )
        if steps:
            return " ".join(steps)
        return (
            "Now update the desired-state files of these listeners: set the variable each one's "
            "password = { env = ... } names to the new password; until then, plan shows a password change "
            "and apply would put the old password back."
        )

    @property
    def remaining(self) -> pd.DataFrame:
        """One row per listener still on the old password: account_name, service_name, reason."""
        return frame(self.remaining_list, REMAINING_COLUMNS)

    @property
    def ok(self) -> bool:
        """Whether some listener matched and every one was verified on the new password."""
        return bool(self.matched) and not self.remaining_list

    def summary(self) -> str:
        """How many listeners are still on another password."""
        count = len(self.remaining_list)
        return f"; {count} {'listener' if count == 1 else 'listeners'} still on another password"

    def __repr__(self) -> str:
        return self.text()

    def text(self, *, cli: bool = False, next_step: bool = True) -> str:
        """The result in a few lines.

        Args:
            cli: A plain first line, for the command line, instead of a repr's ``<RotationResult ...>``.
            next_step: End with what to do next (:attr:`next_step`).
        """
        lines = [result_text(self, cli=cli, title="Rotated")]
        if not self.matched:
            lines.append("  No listener matched the accounts and services given: nothing was rotated.")
        if self.skipped:
            lines.append(
                f"  {self.skipped} listener{'' if self.skipped == 1 else 's'} with no username or password "
                f"left alone ({'--include-without-credentials' if cli else 'include_without_credentials=True'} "
                "to rotate them too)."
            )
        lines += [_safe(f"  {a} {s or '(account)'}: {r}") for a, s, r in self.remaining_list[:20]]
        if next_step and self.next_step:
            lines.append(f"  {_safe(self.next_step)}")
        return "\n".join(lines)


def service_list(services: Iterable[str] | str | None, *, allow_unknown: bool) -> set[str] | None:
    """The services a rotation is limited to (``None``: all), each checked (with did-you-mean)."""
    if services is None:
        return None
    names = [services] if isinstance(services, str) else list(services)
    if not names:
        raise ValidationError("services", "is empty", "service names, or None for every service")
    try:
        return {check.service_name(s, allow_unknown=allow_unknown) for s in names}
    except ValidationError as exc:
        raise exc.renamed("services") from None


def _clear_text(url: str) -> bool:
    """Whether a password sent to this listener would cross a network in clear text."""
    return urlsplit(url).scheme.lower() != "https" and not is_loopback_host(urlsplit(url).hostname or "")


def _references(desired: DesiredState | None, rotated: Iterable[tuple[str, str]]) -> tuple[list[str], int]:
    """The variables a desired state names for the passwords rotated, and how many it keeps by fingerprint."""
    if desired is None:
        return [], 0
    wanted = [w for a, s in rotated if (w := desired.accounts.get(a, {}).get(s)) is not None]
    return sorted({w.env for w in wanted if w.env}), sum(1 for w in wanted if w.fingerprint)


async def rotate(
    client: ThingSpaceClient,
    accounts: Iterable[str] | str,
    *,
    new_password: str | Secret,
    services: Iterable[str] | str | None = None,
    listener: Listener | None = None,
    concurrency: int = 8,
    journal: str | os.PathLike[str] | Journal | None = None,
    progress: bool | None = None,
    fingerprint_key: bytes | str | None = None,
    source: str = "",
    on_progress: Callable[[int, int], None] | None = None,
    include_without_credentials: bool = False,
    allow_http: bool = False,
    allow_unknown_service: bool = False,
    desired: DesiredState | str | os.PathLike[str] | None = None,
    lock_wait: float = LOCK_WAIT,
    confirm: Callable[[list[tuple[str, str, str]]], bool] | None = None,
) -> RotationResult:
    """Move every listener of the accounts (or of the given services) to ``new_password``.

    See :meth:`tskit.ThingSpace.rotate_password`. The accounts' locks are held from the first
    read to the verifying read (see :func:`tskit.state.apply_plan`).
    """
    names = account_list(accounts)
    secret = Secret(check.credential("new_password", new_password))
    if not secret:
        raise ValidationError("new_password", "is empty", "1 to 40 characters")
    try:
        client.check_listener_credentials("", secret.reveal())
    except ValidationError as refused:
        raise refused.renamed("new_password") from None
    wanted = service_list(services, allow_unknown=allow_unknown_service)
    if listener is not None and not listener.running:
        raise ValidationError("listener", "is stopped: it would receive nothing", "a running tskit.Listener")
    state_file = None if desired is None else as_desired(desired)
    key = load_key(fingerprint_key)
    book = journal if isinstance(journal, Journal) else Journal.for_writing(journal or default_path())
    async with AccountLocks(client.base_url, names, journal=book.path, wait=lock_wait):
        return await _rotate_held(
            client, names, secret, wanted, listener, concurrency, book, progress, key, source, on_progress,
            include_without_credentials, allow_http, state_file, confirm,
        )  # fmt: skip


async def _rotate_held(
    client: ThingSpaceClient,
    names: list[str],
    secret: Secret,
    wanted: set[str] | None,
    listener: Listener | None,
    concurrency: int,
    journal: Journal,
    progress: bool | None,
    key: bytes,
    source: str,
    on_progress: Callable[[int, int], None] | None,
    include_without_credentials: bool,
    allow_http: bool,
    state_file: DesiredState | None,
    confirm: Callable[[list[tuple[str, str, str]]], bool] | None = None,
) -> RotationResult:
    """The rotation, the accounts' locks held."""
    # Every answer confirmed: a listener a partial answer left out would stay on the old password unsaid.
    found, failed = await read_accounts(
        client,
        names,
        concurrency=concurrency,
        progress=progress,
        description="Reading",
        confirm_all=True,
        read_again=True,
    )

    def eligible(cb: Callback) -> bool:
        # A listener with no username nor password checks none: giving it one is a change it never asked for.
        return (wanted is None or cb.service_name in wanted) and bool(
            include_without_credentials or cb.username or cb.password
        )

    named = {
        n: [cb for cb in found[n].callbacks if wanted is None or cb.service_name in wanted] for n in names if n in found
    }
    chosen = {n: [cb for cb in cbs if eligible(cb)] for n, cbs in named.items()}
    skipped = sum(len(cbs) - len(chosen[n]) for n, cbs in named.items())
    clear = [f"{n} {cb.service_name}" for n, cbs in chosen.items() for cb in cbs if _clear_text(cb.url)]
    if clear and not allow_http:
        raise ValidationError(
            "new_password",
            f"would travel in clear text to {len(clear)} plain-HTTP listener(s) ({', '.join(clear[:5])}"
            f"{' ...' if len(clear) > 5 else ''}); the audit rates this high; nothing was sent",
            "https listeners",
            remedy=Remedy("set-option", option="allow_http", value="True"),
        )
    moving = [(n, cb.service_name, cb.url) for n, cbs in chosen.items() for cb in cbs]
    if confirm is not None and moving and not confirm(moving):
        raise RotationDeclined(len(moving))
    if listener is not None:
        # The listener takes the new password before ThingSpace sends it, and keeps every password
        # it took, plus those still registered for it, for the minutes ThingSpace goes on sending them.
        listener.rotate_password(
            secret.reveal(),
            still_registered=[
                cb.password.reveal() for cbs in chosen.values() for cb in cbs if cb.url.startswith(listener.url)
            ],
        )
    state = DesiredState(
        {
            name: {cb.service_name: DesiredCallback(cb.url, cb.username, secret) for cb in cbs}
            for name, cbs in chosen.items()
        },
        source="rotation",
        allow_any_port=True,
        allow_unknown_service=True,
    )
    plan = compute_plan(client, state, found, failed, key=key, prune=False, source=source or client.base_url)
    result = await apply_plan(
        client, plan, concurrency=concurrency, journal=journal, progress=progress, on_progress=on_progress
    )
    # Verify by reading again: a listener is rotated when its password's fingerprint is the new one's.
    # A rotated service missing from a listing is confirmed absent by a second one before it is
    # called "no longer registered"; an account whose listings stay uncertain is said to be so.
    rotated = {name: {cb.service_name for cb in cbs} for name, cbs in chosen.items()}
    after, unread = await read_accounts(
        client, names, concurrency=concurrency, progress=False, expect=rotated, confirm_all=True, read_again=True
    )
    result.outcome_list = await asyncio.to_thread(
        reconcile, plan, result.journal, result.apply_id, result.outcome_list, after
    )
    remaining: list[tuple[str, str, str]] = []
    new_print = {name: fingerprint(key, name, "", secret.reveal()) for name in names}
    for name in names:
        if name in failed or name in unread:
            error = AccountError.from_exception(name, failed.get(name) or unread[name])
            parts = ("could not be read for certain:", error.error, error.error_code, error.message)
            reason = " ".join(p for p in parts if p)
            remaining.append((name, "", reason))
            continue
        gone = rotated[name] - after[name].services  # e.g. deregistered, then not registered again
        remaining += [(name, service, "no longer registered") for service in sorted(gone)]
        for cb in after[name].callbacks:
            # Every listener the rotation is for, also one the first listing did not show.
            if not eligible(cb) or fingerprint(key, name, "", cb.password.reveal()) == new_print[name]:
                continue
            why = "still on another password" if cb.service_name in rotated[name] else "not rotated: not listed before"
            remaining.append((name, cb.service_name, why))
    matched = [(n, cb.service_name) for n, cbs in chosen.items() for cb in cbs]
    return RotationResult(
        result,
        remaining,
        matched=len(matched),
        skipped=skipped,
        references=_references(state_file, matched),
        desired_source=None if state_file is None else state_file.source,
    )
