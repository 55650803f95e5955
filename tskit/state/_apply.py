"""Carrying a plan out: steps sent through the client's truthful mutations, each one journaled."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tskit._errors import ApiError, RateLimitError, ThingSpaceError
from tskit._frames import frame
from tskit._models import CallbackActionResult
from tskit._secret import Secret
from tskit.auth import server
from tskit.ops import check_concurrency, progress_bar, read_accounts
from tskit.state._display import result_html, result_text
from tskit.state._journal import Journal, JournalError, default_path
from tskit.state._lock import LOCK_WAIT, AccountLocks, Holder
from tskit.state._outcomes import CHANGED, CONFIRMED, DONE, FAILED, OUTCOMES, UNCHECKED
from tskit.state._steps import Live, StalePlanError, Step, live_of

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from tskit._client import ThingSpaceClient
    from tskit._models import Listing
    from tskit.state._plan import Plan

OUTCOME_COLUMNS: Final = ("account_name", "service_name", "action", "outcome", "reason")
_NO_PASSWORD: Final = Secret("")  # a step read back from a journal, which holds no password


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one step.

    ``done``: ThingSpace said yes; ``confirmed``: its answer was lost and a listing showed the
    change; ``failed``: the reason says why. ``unknown``: a failure whose effect nobody saw (a lost
    answer): a later listing that shows the change makes it ``confirmed``. Not sent:
    ``changed-since-plan``: a listing just before it shows the listener other than the plan saw it
    (someone changed it since: plan again); ``unchecked``: no listing could show it for certain.
    """

    step: Step
    outcome: str
    reason: str = ""
    unknown: bool = False


class ApplyResult:
    """The outcome of every step of an apply, and the journal that recorded them.

    Attributes:
        plan: The plan applied.
        outcome_list: One :class:`Outcome` per step.
        journal: The journal (``.frame`` reads it back).
        resumed: Steps of an interrupted apply found in the journal, closed by this one.
    """

    def __init__(self, plan: Plan, outcomes: list[Outcome], journal: Journal, resumed: int, apply_id: str = "") -> None:
        self.apply_id = apply_id
        self.plan = plan
        self.outcome_list = outcomes
        self.journal = journal
        self.resumed = resumed

    @property
    def outcomes(self) -> pd.DataFrame:
        """One row per step: account_name, service_name, action, outcome, reason."""
        rows = [
            (o.step.account_name, o.step.service_name, o.step.action, o.outcome, o.reason) for o in self.outcome_list
        ]
        return frame(rows, OUTCOME_COLUMNS)

    @property
    def failed(self) -> list[Outcome]:
        """The steps that failed."""
        return [o for o in self.outcome_list if o.outcome == "failed"]

    @property
    def not_sent(self) -> list[Outcome]:
        """The steps not sent: ``changed-since-plan`` or ``unchecked``."""
        return [o for o in self.outcome_list if o.outcome in (CHANGED, UNCHECKED)]

    @property
    def changed_since_plan(self) -> list[Outcome]:
        """The steps not sent because their listener changed since the plan: plan again."""
        return [o for o in self.outcome_list if o.outcome == CHANGED]

    @property
    def ok(self) -> bool:
        """Whether every step took effect."""
        return not self.failed and not self.not_sent

    def counts(self) -> dict[str, int]:
        """How many steps per outcome (``done``, ``confirmed``, ``failed``; the others when there are some)."""
        counts = {k: sum(1 for o in self.outcome_list if o.outcome == k) for k in OUTCOMES}
        return {k: n for k, n in counts.items() if n or k in (DONE, CONFIRMED, FAILED)}

    def summary(self) -> str:
        """More to say on the first line of the text (none here)."""
        return ""

    def __repr__(self) -> str:
        return result_text(self)

    def _repr_html_(self) -> str:
        return result_html(self)

    def html(self, *, journal: bool = True) -> str:
        """The result as HTML: counts per outcome, the failures, and (``journal``) the journal's path."""
        return result_html(self, journal=journal)


def outcome_of(result: CallbackActionResult) -> str:
    """``done`` or ``confirmed``, from what the client says of a mutation."""
    told = getattr(result, "outcome", None)  # "sent", "resent" or "confirmed", where the client tells
    if told is not None:
        return "confirmed" if told == "confirmed" else "done"
    return "confirmed" if result.confirmed_by_listing else "done"


async def _mutate(client: ThingSpaceClient, plan: Plan, step: Step) -> CallbackActionResult:
    if step.action == "delete":
        return await client.deregister_callback(step.account_name, step.service_name, allow_unknown_service=True)
    return await client.register_callback(
        step.account_name,
        step.service_name,
        step.url,
        username=step.username or None,
        password=step.password.reveal() or None,
        allow_any_port=plan.desired.allow_any_port,
        allow_unknown_service=True,
    )


def _already_registered(exc: ApiError) -> bool:
    return "alreadyregistered" in exc.error_code.replace("_", "").casefold()


async def _send(
    client: ThingSpaceClient, plan: Plan, step: Step, note: Callable[[str], Awaitable[None]] | None = None
) -> Outcome:
    """Send one step; the client retries it and, when an answer was lost, confirms it by listing.

    A returned result means ThingSpace held what was asked when the client checked, so nothing is
    sent or listed here again. Where ThingSpace refuses to register a service again ("already
    registered": whether it replaces is not documented), the listener is deregistered, then
    registered, as this one step; ``note`` journals that first, and the outcome's reason says so.
    """
    replacing = ""
    try:
        try:
            result = await _mutate(client, plan, step)
        except ApiError as exc:
            if step.action == "delete" or not _already_registered(exc):
                raise
            replacing = f"ThingSpace refused to register it again ({exc.error_code}): deregistered it first"
            if note is not None:
                await note(replacing)
            await client.deregister_callback(step.account_name, step.service_name, allow_unknown_service=True)
            result = await _mutate(client, plan, step)
    except ThingSpaceError as exc:
        refused = isinstance(exc, ApiError) and exc.status_code < 500 and not isinstance(exc, RateLimitError)
        reason = f"{replacing}; then: {exc}" if replacing else str(exc)
        return Outcome(step, "failed", reason, unknown=not refused)  # no answer, or a 5xx: may have happened
    if outcome_of(result) == "done":
        return Outcome(step, "done", replacing)
    seen = "the answer was lost; a listing shows the change"
    return Outcome(step, "confirmed", f"{replacing}; {seen}" if replacing else seen)


def _absence_to_confirm(steps: list[Step]) -> set[str]:
    """The services whose absence a listing must confirm: those the steps saw, and those they delete."""
    return {s.service_name for s in steps if s.old is not None or s.action == "delete"}


def reconcile(
    plan: Plan, book: Journal, apply_id: str, outcomes: list[Outcome], listed: Mapping[str, Listing]
) -> list[Outcome]:
    """``outcomes`` with each unknown failure that ``listed`` shows in effect made ``confirmed``.

    The journal is append-only: a second outcome line is written for such a step, and readers
    take a step's last outcome line.
    """
    reconciled = []
    for outcome in outcomes:
        step = outcome.step
        if outcome.outcome == "failed" and outcome.unknown and step.account_name in listed:
            now = listed[step.account_name].get(step.service_name)
            if step.took_effect(None if now is None else live_of(plan._key, now)):
                outcome = Outcome(step, "confirmed", f"{outcome.reason}; a later listing shows the change in effect")
                book.write("outcome", apply=apply_id, step=step.id, outcome=outcome.outcome, reason=outcome.reason)
        reconciled.append(outcome)
    return reconciled


#: What each account read under its lock holds (``None``: it could not be read), by account and service.
Fresh = dict[str, dict[str, Live] | None]


def _settle(book: Journal, apply_id: str, entries: list[dict[str, str]], fresh: Fresh, by: Journal) -> int:
    """Close steps an interrupted apply left open, with what the accounts hold now; unread accounts stay open."""
    closed = 0
    for entry in entries:
        live = fresh.get(entry["account_name"])
        if live is None:
            continue
        step = Step(
            entry["account_name"],
            entry["service_name"],
            entry["action"],
            entry["url"],
            entry["username"],
            _NO_PASSWORD,
            entry["password_fingerprint"],
            None,
        )
        where = f"apply {apply_id}" + ("" if by is book else f" (journal {by.path})")
        if step.took_effect(live.get(entry["service_name"])):
            outcome, reason = "confirmed", f"interrupted; {where} found the change in effect"
        else:
            outcome, reason = "failed", f"interrupted; not in effect when {where} read the account under its lock"
        book.write("outcome", apply=entry["apply"], step=entry["step"], outcome=outcome, reason=reason)
        closed += 1
    return closed


def _close_unfinished(
    book: Journal, apply_id: str, locks: AccountLocks, unfinished: list[dict[str, str]], fresh: Fresh
) -> int:
    """Settle the unfinished steps of the accounts held: in this journal, and in those of runs that died holding them.

    Only steps of accounts whose lock is held are settled: no other run can have them in flight.
    """
    closed = _settle(book, apply_id, unfinished, fresh, book)
    journals: dict[str, list[str]] = {}
    for account, paths in locks.previous.items():
        for path in paths:
            journals.setdefault(path, []).append(account)
    for path, accounts in journals.items():
        if os.path.abspath(path) == os.path.abspath(book.path):
            continue
        readable = [a for a in accounts if fresh.get(a) is not None]
        try:
            other = Journal(path)
            count = _settle(other, apply_id, other.unfinished(locks.server, readable), fresh, book)
        except JournalError as exc:  # gone or unreadable: nothing can be settled there
            book.write("settled", apply=apply_id, journal=str(path), steps=0, problem=exc.reason or str(exc))
        else:
            book.write("settled", apply=apply_id, journal=str(path), steps=count, accounts=readable)
            closed += count
    for account in list(locks.previous):
        if fresh.get(account) is not None:
            locks.settled(account)
    return closed


async def _read_fresh(
    client: ThingSpaceClient, plan: Plan, locks: AccountLocks, unfinished: list[dict[str, str]], concurrency: int
) -> tuple[Fresh, dict[str, str]]:
    """What the accounts to decide on hold now, read for certain under their locks, and why any could not be.

    Compare, then change: another writer may have changed an account since the plan (another run
    before it took the lock, or someone outside tskit). An absence the steps depend on (a listener
    the plan saw, one a step deletes, one an unfinished step touched) is confirmed by further
    listings; an account of a dead holder's journal is confirmed whole. An account no certain
    listing shows is ``None``: its steps are not sent.
    """
    steps: dict[str, list[Step]] = {}
    for step in plan.steps:
        steps.setdefault(step.account_name, []).append(step)
    expect: dict[str, set[str]] = {a: _absence_to_confirm(s) for a, s in steps.items()}
    for entry in unfinished:
        expect.setdefault(entry["account_name"], set()).add(entry["service_name"])
    others = sorted(set(locks.previous) - set(expect))  # only a dead holder's journal names what to settle
    found, failed = await read_accounts(
        client, sorted(expect), concurrency=concurrency, progress=False, expect=expect, read_again=True
    )
    if others:
        more, still = await read_accounts(
            client, others, concurrency=concurrency, progress=False, confirm_all=True, read_again=True
        )
        found.update(more)
        failed.update(still)
    fresh: Fresh = {a: None for a in failed}
    for account, listing in found.items():
        fresh[account] = {c.service_name: live_of(plan._key, c) for c in listing.callbacks}
    return fresh, {a: str(error) for a, error in failed.items()}


def _shown(live: Live | None) -> str:
    if live is None:
        return "no listener"
    password = "a password" if live.fingerprint else "no password"
    return f"url {live.url}, username {live.username!r}, {password} (fingerprint {live.fingerprint[:12] or '-'})"


def _recheck(
    plan: Plan, book: Journal, apply_id: str, fresh: Fresh, unread: dict[str, str]
) -> tuple[list[Outcome], list[Step]]:
    """Steps still to send, and outcomes of those the accounts read under the lock settle without sending.

    A step already in effect (another apply made it) is not sent again (``confirmed``); one whose
    listener is no longer what the plan saw is not sent either (``changed-since-plan``: it would
    overwrite someone else's change); one whose account no certain listing shows is ``unchecked``.
    """
    decided: list[Outcome] = []
    to_send: list[Step] = []
    for step in plan.steps:
        services = fresh.get(step.account_name)
        now = None if services is None else services.get(step.service_name)
        if services is None:
            why = unread.get(step.account_name, "")
            reason = f"not sent: the account could not be listed for certain under its lock{': ' if why else ''}{why}"
            outcome = Outcome(step, UNCHECKED, reason)
        elif step.took_effect(now):
            outcome = Outcome(step, "confirmed", "already in effect when read under the account's lock: not sent")
        elif now != step.old:
            reason = f"not sent: the plan saw {_shown(step.old)}; a listing now shows {_shown(now)}. Plan again"
            outcome = Outcome(step, CHANGED, reason)
        else:
            to_send.append(step)
            continue
        book.write("step", apply=apply_id, **step.record())
        book.write("outcome", apply=apply_id, step=step.id, outcome=outcome.outcome, reason=outcome.reason)
        decided.append(outcome)
    return decided, to_send


async def apply_plan(
    client: ThingSpaceClient,
    plan: Plan,
    *,
    concurrency: int = 8,
    journal: str | os.PathLike[str] | Journal | None = None,
    progress: bool | None = None,
    max_age: float = 300.0,
    on_progress: Callable[[int, int], None] | None = None,
    lock_wait: float = LOCK_WAIT,
    on_wait: Callable[[str, Holder | None], None] | None = None,
) -> ApplyResult:
    """Carry out a plan's steps through ``client``, at most ``concurrency`` at once; see :meth:`Plan.apply`.

    The plan is data (what to change, what each listener held when planned); the client does the
    sending, its retries and the confirmation of a lost answer by listing.

    The journal is held first (refused at once when another apply holds it), then the lock of
    every account with a step or something to settle, in sorted order, waiting at most
    ``lock_wait`` seconds in all (:class:`~tskit.state.AccountLockedError` beyond). Under the
    locks those accounts are read again: what another run did since the plan is not sent again,
    nor overwritten, and unfinished steps of runs that died holding them are closed.
    """
    check_concurrency(concurrency)
    if plan.age > max_age:
        raise StalePlanError(
            f"the plan is {_seconds(plan.age)} old (the most is {_seconds(max_age)}): ThingSpace may hold "
            "something else by now. Plan again, then apply the new plan; nothing was sent"
        )
    book = journal if isinstance(journal, Journal) else Journal.for_writing(journal or default_path())
    with book.hold():
        plan.mark_applied()
        accounts = _to_lock(client.base_url, plan, book)
        held = AccountLocks.current()
        if held is not None and held.covers(client.base_url, accounts):  # a rotation holds them
            return await _apply_held(client, plan, book, held, concurrency, progress, on_progress)
        async with AccountLocks(client.base_url, accounts, journal=book.path, wait=lock_wait, on_wait=on_wait) as locks:
            return await _apply_held(client, plan, book, locks, concurrency, progress, on_progress)


def _to_lock(base_url: str, plan: Plan, book: Journal) -> set[str]:
    """The accounts to hold: those with steps, and those whose unfinished steps may be settled.

    An account the plan only read is held when a record shows a holder (alive, or dead with a
    journal to settle) or this journal has an unfinished step of it: one open file per lock.
    """
    accounts = {s.account_name for s in plan.steps}
    accounts |= {e["account_name"] for e in book.unfinished(server(base_url), plan.live)}
    return accounts | AccountLocks.recorded(base_url, set(plan.live) - accounts)


def _seconds(value: float) -> str:
    shown = f"{value:.0f}" if value >= 1 else f"{value:.1g}"
    return f"{shown} s"


async def _apply_held(
    client: ThingSpaceClient,
    plan: Plan,
    book: Journal,
    locks: AccountLocks,
    concurrency: int,
    progress: bool | None,
    on_progress: Callable[[int, int], None] | None,
) -> ApplyResult:
    """The apply itself, the journal and the accounts held."""
    apply_id = f"{plan.id}-{secrets.token_hex(3)}"
    unfinished = await asyncio.to_thread(book.unfinished, locks.server, locks.accounts)
    # Written even when there is nothing to change: the result names this journal, to be read back.
    book.write(
        "apply",
        apply=apply_id,
        format="tskit-journal/1",
        source=plan.source,
        desired=plan.desired.source,
        prune=plan.prune,
        counts=plan.counts(),
        server=locks.server,
    )
    fresh, unread = await _read_fresh(client, plan, locks, unfinished, concurrency)
    resumed = await asyncio.to_thread(_close_unfinished, book, apply_id, locks, unfinished, fresh)
    outcomes, to_send = await asyncio.to_thread(_recheck, plan, book, apply_id, fresh, unread)
    queue: asyncio.Queue[Step] = asyncio.Queue()
    for step in to_send:
        queue.put_nowait(step)
    bar = progress_bar(len(plan.steps), enabled=progress, description="Applying", unit="change")

    async def worker() -> None:
        while not queue.empty():
            step = queue.get_nowait()
            await asyncio.to_thread(book.write, "step", apply=apply_id, **step.record())

            async def note(reason: str, step: Step = step) -> None:
                calls = ["deregister", "register"]
                await asyncio.to_thread(book.write, "calls", apply=apply_id, step=step.id, calls=calls, reason=reason)

            outcome = await _send(client, plan, step, note)
            await asyncio.to_thread(
                book.write, "outcome", apply=apply_id, step=step.id, outcome=outcome.outcome, reason=outcome.reason
            )
            outcomes.append(outcome)
            if bar is not None:
                bar.update(len(outcomes) - bar.n)
            if on_progress is not None:
                on_progress(len(outcomes), len(plan.steps))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(to_send))):
                group.create_task(worker())
    except ExceptionGroup as group:
        journal_failed = group.subgroup(JournalError)
        if journal_failed is None:
            raise
        raise journal_failed.exceptions[0] from None  # one sentence (a full disk), not a group of tracebacks
    finally:
        if bar is not None:
            bar.close()
    order = {id(s): i for i, s in enumerate(plan.steps)}
    outcomes.sort(key=lambda o: order[id(o.step)])
    unknown = sorted({o.step.account_name for o in outcomes if o.outcome == "failed" and o.unknown})
    if unknown:  # look once more: a change whose answer was lost may be in effect by now
        lost = [o.step for o in outcomes if o.outcome == "failed" and o.unknown]
        expect = {a: _absence_to_confirm([s for s in lost if s.account_name == a]) for a in unknown}
        listed, _ = await read_accounts(client, unknown, progress=False, expect=expect, read_again=True)
        outcomes = await asyncio.to_thread(reconcile, plan, book, apply_id, outcomes, listed)
    return ApplyResult(plan, outcomes, book, resumed, apply_id)
